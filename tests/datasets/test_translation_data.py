"""Translation data (crnn.datasets._translation): gettext pairs from .mo files
written here, numbers in words, dates in many formats."""
import calendar
import os
import re
import struct
from datetime import date, datetime

import pytest

from crnn.datasets._translation import (DATE_FORMATS, gettext_pairs, make_dates,
                                    make_number_phrases)

HEADER = ("Project-Id-Version: test\nContent-Type: text/plain; charset=UTF-8\n"
          "Plural-Forms: nplurals=2; plural=(n > 1);\n")


def write_mo(path, entries):
    """A GNU .mo file: magic, revision, N, the offsets of the original and
    translation tables (N (length, offset) pairs each), an empty hash table,
    then the NUL-terminated strings.  entries: (msgid, msgstr) pairs of str;
    a plural entry is "singular\\0plural" -> "form0\\0form1", a context
    "ctx\\x04msgid"."""
    entries = sorted((k.encode(), v.encode()) for k, v in entries)
    n = len(entries)
    originals, translations = 28, 28 + 8 * n
    offset = 28 + 16 * n
    tables, data = [[], []], b""
    for column in (0, 1):
        for entry in entries:
            tables[column].append((len(entry[column]), offset + len(data)))
            data += entry[column] + b"\0"
    head = struct.pack("<7I", 0x950412de, 0, n, originals, translations, 0, offset)
    body = b"".join(struct.pack("<2I", *t) for t in tables[0] + tables[1])
    path.write_bytes(head + body + data)


ENTRIES = [
    ("", HEADER),
    ("Open the file", "Ouvrir le fichier"),
    ("_File", "_Fichier"),
    ("_OK", "_OK"),
    ("Save _As", "Enregistrer _sous"),
    ("Size", "Taille"),
    ("Si_ze:", "_Taille\u00a0:"),                  # mid-word mnemonic of a known word
    ("&Open", "&Ouvrir"),
    ("AT&T syntax", "syntaxe AT&T"),
    ("E&xit", "&Quitter"),
    ("client_encoding is invalid", "client_encoding est invalide"),   # identifier
    ("aggregate_name", "nom_agrégat"),                                 # placeholder
    ("%s not found", "%s introuvable"),
    ("Hello %(name)s", "Bonjour %(name)s"),
    ("Value {0}", "Valeur {0}"),
    ("Bad {name}", "Mauvais {name}"),
    ("%1$s of %2$s", "%1$s sur %2$s"),
    ("Deleted %1 items", "%1 éléments supprimés"),
    ("Yesterday at %H:%M", "Hier à %H:%M"),
    ("Page", "Page %d"),                            # a format code in the target only
    ("Progress", "Progression 100 %"),             # a percent sign is text
    ("<b>Bold</b> text", "texte <b>gras</b>"),
    ("Fish &amp; chips", "Poisson-frites"),
    ("Line one\nLine two", "Ligne un\nLigne deux"),
    ("Tab\there", "Tabulation\tici"),
    ("Soft\u00adhyphen", "Trait d'union conditionnel"),     # a format character
    ("Untranslated", ""),
    ("  Too   many\u00a0 spaces ", " Trop\u00a0d'espaces  "),
    ("one two three four five six seven eight nine ten eleven twelve",
     "un deux trois quatre cinq six sept huit neuf dix onze douze"),
    ("one two three four five six seven eight nine ten eleven twelve thirteen",
     "un deux trois quatre cinq six sept huit neuf dix onze douze treize"),
    ("Close", "Fermer"),
    ("One file\0Many files", "Un fichier\0Plusieurs fichiers"),
    ("menu\x04Quit", "Quitter"),
]


@pytest.fixture
def localedir(tmp_path):
    directory = tmp_path / "fr" / "LC_MESSAGES"
    directory.mkdir(parents=True)
    # written in reverse name order: the pairs follow the sorted names
    write_mo(directory / "b.mo", [("", HEADER), ("Close", "Clore"), ("New", "Nouveau"),
                                  ("_File", "Fi_chier")])
    write_mo(directory / "a.mo", ENTRIES)
    (directory / "c.mo").write_bytes(b"not a catalog")
    (directory / "notes.txt").write_text("Close -> Terminer")
    return tmp_path


def test_mo_writer_is_read_by_gettext(localedir):
    import gettext
    with open(localedir / "fr" / "LC_MESSAGES" / "a.mo", "rb") as fp:
        t = gettext.GNUTranslations(fp)
    assert t.gettext("Open the file") == "Ouvrir le fichier"
    assert t.ngettext("One file", "Many files", 3) == "Plusieurs fichiers"
    assert t.pgettext("menu", "Quit") == "Quitter"


def test_gettext_pairs_cleaning(localedir):
    pairs = gettext_pairs("fr", localedir)
    assert pairs == [                        # a.mo in msgid order, then b.mo
        ("Too many spaces", "Trop d'espaces"),
        ("Open", "Ouvrir"),
        ("AT&T syntax", "syntaxe AT&T"),
        ("Close", "Fermer"),                 # b.mo's "Clore" comes later: dropped
        ("Exit", "Quitter"),
        ("One file", "Un fichier"),
        ("Open the file", "Ouvrir le fichier"),
        ("Progress", "Progression 100 %"),
        ("Save As", "Enregistrer sous"),
        ("Size:", "Taille :"),
        ("Size", "Taille"),
        ("File", "Fichier"),
        ("OK", "OK"),
        ("Quit", "Quitter"),
        ("one two three four five six seven eight nine ten eleven twelve",
         "un deux trois quatre cinq six sept huit neuf dix onze douze"),
        ("New", "Nouveau"),
    ]
    assert len({src for src, _ in pairs}) == len(pairs)


def test_gettext_pairs_length_limits(localedir):
    pairs = gettext_pairs("fr", localedir, min_words=2, max_words=3)
    assert all(2 <= len(s.split()) <= 3 and 2 <= len(t.split()) <= 3 for s, t in pairs)
    assert ("Open the file", "Ouvrir le fichier") in pairs and ("Open", "Ouvrir") not in pairs
    long = gettext_pairs("fr", localedir, max_words=13)
    assert len(long) == len(gettext_pairs("fr", localedir)) + 1


def test_gettext_pairs_errors(tmp_path, localedir):
    with pytest.raises(FileNotFoundError, match="no gettext catalog directory"):
        gettext_pairs("de", localedir)
    with pytest.raises(ValueError, match="max_words=2 is below min_words=3"):
        gettext_pairs("fr", localedir, min_words=3, max_words=2)
    with pytest.raises(ValueError, match="min_words must be an integer >= 1"):
        gettext_pairs("fr", localedir, min_words=0)
    with pytest.raises(ValueError, match="lang must be a locale directory name"):
        gettext_pairs("", localedir)
    (tmp_path / "xx" / "LC_MESSAGES").mkdir(parents=True)
    assert gettext_pairs("xx", tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/usr/share/locale/fr/LC_MESSAGES"),
                    reason="no French gettext catalogs on this machine")
def test_gettext_pairs_installed_catalogs():
    pairs = gettext_pairs()
    assert len({s for s, _ in pairs}) == len(pairs)
    for src, tgt in pairs:
        for text in (src, tgt):
            assert 1 <= len(text.split()) <= 12 and text == " ".join(text.split())
            assert not re.search(r"%[sd(]|[{}_\n]|<[A-Za-z/]", text), text


def test_number_phrases():
    pytest.importorskip("num2words")
    en, fr = make_number_phrases(50, random_state=0)
    assert len(en) == len(fr) == 50 and all(isinstance(s, str) and s for s in en + fr)
    assert (en, fr) == make_number_phrases(50, random_state=0)
    assert en != make_number_phrases(50, random_state=1)[0]
    assert make_number_phrases(3, low=97, high=98) == (["ninety-seven"] * 3,
                                                       ["quatre-vingt-dix-sept"] * 3)
    assert make_number_phrases(0, random_state=0) == ([], [])
    # everything but 7 and 13 held out
    en, fr = make_number_phrases(40, low=0, high=50, exclude=set(range(50)) - {7, 13},
                                 random_state=0)
    assert set(en) == {"seven", "thirteen"} and set(fr) == {"sept", "treize"}
    # log-uniform: about half the numbers of [0, 10**6) are below 1000
    below_1000 = sum("thousand" not in s for s in make_number_phrases(400, random_state=0)[0])
    assert 140 < below_1000 < 260
    below_1000 = sum("thousand" not in s for s in
                     make_number_phrases(400, random_state=0, distribution="uniform")[0])
    assert below_1000 < 5


def test_number_phrases_errors():
    pytest.importorskip("num2words")
    with pytest.raises(ValueError, match="n_samples must be an integer >= 0"):
        make_number_phrases(-1)
    with pytest.raises(ValueError, match="high must be above low"):
        make_number_phrases(5, low=10, high=10)
    with pytest.raises(ValueError, match="exclude holds every integer"):
        make_number_phrases(5, low=0, high=3, exclude=[0, 1, 2, 5])
    with pytest.raises(ValueError, match="distribution must be"):
        make_number_phrases(5, distribution="normal")


# the English renderings of DATE_FORMATS, for an independent parse (C locale names)
ENGLISH_FORMATS = ["%A, %B %d, %Y", "%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y",
                   "%a %d %b %Y", "%A %d %B %Y", "%d/%m/%Y", "%d.%m.%Y", "%Y-%m-%d"]


def test_dates_english_parse_back():
    pytest.importorskip("babel")
    sources, targets = make_dates(500, random_state=0, languages=("en",))
    used = set()
    for src, iso in zip(sources, targets):
        day = date.fromisoformat(iso)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", iso) and 1900 <= day.year <= 2099
        parsed = []
        for fmt in ENGLISH_FORMATS:
            try:
                parsed.append((datetime.strptime(src, fmt).date(), fmt))
            except ValueError:
                pass
        assert parsed and all(d == day for d, _ in parsed), (src, iso)
        for weekday in calendar.day_name[:] + calendar.day_abbr[:]:
            if re.search(rf"\b{weekday}\b", src):
                assert weekday in (day.strftime("%A"), day.strftime("%a")), (src, iso)
        used.update(fmt for _, fmt in parsed)
    assert len(used) == len(ENGLISH_FORMATS)


def test_dates_languages():
    pytest.importorskip("babel")
    sources, targets = make_dates(400, random_state=1)
    assert (sources, targets) == make_dates(400, random_state=1)
    assert sources != make_dates(400, random_state=2)[0]
    for src, iso in zip(sources, targets):
        day = date.fromisoformat(iso)
        numbers = [int(x) for x in re.findall(r"\d+", src)]
        assert day.year in numbers and day.day in numbers, (src, iso)
    assert any("mars" in s or "juin" in s for s in sources)         # French month names
    assert any(re.search(r"\d\. \w+ \d{4}", s) for s in sources)    # German "3. März 2021"
    assert any(" de " in s for s in sources)                        # Spanish "3 de marzo"
    from babel.dates import format_date
    src, iso = make_dates(1, random_state=3, languages=("fr",))
    assert src[0] in {format_date(date.fromisoformat(iso[0]), f, locale="fr")
                      for f in DATE_FORMATS}
    assert make_dates(0) == ([], [])


def test_dates_errors():
    pytest.importorskip("babel")
    with pytest.raises(ValueError, match="languages must be babel locale names"):
        make_dates(3, languages=("en", "xx-nowhere"))
    with pytest.raises(ValueError, match="languages must be a non-empty list"):
        make_dates(3, languages="en")
    with pytest.raises(ValueError, match="n_samples must be an integer >= 0"):
        make_dates(2.5)


def test_the_generators_are_public_in_crnn_datasets():
    import crnn.datasets
    for name in ("gettext_pairs", "make_dates", "make_number_phrases"):
        assert name in crnn.datasets.__all__ and callable(getattr(crnn.datasets, name))
