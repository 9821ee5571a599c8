"""Parallel text for translation models: English -> French pairs from the
machine's gettext catalogs, numbers written in words (num2words), and dates
written in many formats -> ISO 8601 (babel).

num2words and babel are optional, imported when their generator is called.
"""
import gettext
import math
import numbers
import os
import re
import struct
import unicodedata
from datetime import date, timedelta

import numpy as np
from sklearn.utils import check_random_state

# Placeholders: printf, strftime and Python %-formats (%s, %d, %5.2f, %lu,
# %H, %(name)s, %1$s, %%), Qt/KDE %1, %{name} and %<PRIu64>, str.format/ICU
# braces ({0}, {name}, {}), shell and polkit variables ($HOME, ${x}, $1,
# $(unit)) and autoconf substitutions (@PACKAGE@).  "100 %", "100% of" and a
# lone "$" or "@" are text.
_FORMAT = re.compile(r"""%(?:\(\w+\)|\d+\$)?[-+\#0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?[A-Za-z%]
                       | %[\d{<] | [{}] | \$[{(\w] | @\w+@""", re.X)
# markup (<b>, </a>, <br/>, <file>) and entities (&amp;, &#160;)
_MARKUP = re.compile(r"<[A-Za-z/!?][^<>]*>|&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);")
_WORD = re.compile(r"[^\W_]+")


def _has_control(text):
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


def _strip_underscore(text, other, vocabulary):
    """Remove a GTK mnemonic: the string's only underscore, before a letter,
    at the start of a word ("_File", "Save _As") or inside one when the word
    without it is a word of the catalogs ("Si_ze") and the other side of the
    pair does not repeat the underscored word (an identifier: "time_zone")."""
    if text.count("_") != 1:
        return text
    m = re.search(r"(\w*)_([^\W\d_]\w*)", text)
    if m is None or m.group(1) and (m.group(0) in other or
                                    (m.group(1) + m.group(2)).lower() not in vocabulary):
        return text
    return text[:m.start(0) + len(m.group(1))] + text[m.start(2):]


def _strip_ampersand(text):
    """Remove a Qt/KDE accelerator: an "&" before a letter ("&Open", "Op&en"),
    unless it joins two capitals (AT&T, R&D)."""
    return re.sub(r"(?<![A-Z])&(?=[^\W\d_])|&(?=[^\W\dA-Z_])", "", text) \
        if "&" in text else text


def _read_catalog(path):
    """(msgid, msgstr) pairs of a .mo file in its order; None if unreadable.
    Plural entries give their singular forms; a context ("ctx\\x04msgid")
    is dropped."""
    try:
        with open(path, "rb") as fp:
            catalog = gettext.GNUTranslations(fp)._catalog
    except (OSError, ValueError, struct.error, IndexError):
        return None             # a bad magic number, truncated file, undecodable text
    pairs = []
    for key, msgstr in catalog.items():
        if isinstance(key, tuple):             # plural: (msgid, form index)
            if key[1] != 0:
                continue
            key = key[0]
        key = key.rpartition("\x04")[2]
        if key and msgstr:                     # "" is the header
            pairs.append((key, msgstr))
    return pairs


def gettext_pairs(lang="fr", localedir="/usr/share/locale", min_words=1, max_words=12):
    """English -> ``lang`` sentence pairs from the installed gettext catalogs.

    Reads every ``<localedir>/<lang>/LC_MESSAGES/*.mo`` file (in sorted file
    name order; unreadable files are skipped) and keeps the translated
    messages (plural entries: the singular forms; the header is skipped; a
    message context is dropped).  Then, on both sides of each pair:

    - pairs with a placeholder (``%s``, ``%d``, ``%(name)s``, ``%1$s``,
      ``%1``, ``{0}``, ``{name}``, ``$HOME``, ...), markup or an entity
      (``<b>``, ``<file>``, ``&amp;``) or a control or format character
      (newline, tab, ...) are dropped;
    - keyboard accelerators are removed: a lone ``_`` before a letter
      ("_File", "Save _As"; inside a word, "Si_ze", when the word without it
      occurs in the catalogs) and ``&`` before a letter ("&Open", not "AT&T");
    - whitespace is collapsed to single spaces (no-break spaces included:
      "Fichier\\u00a0:" becomes "Fichier :");
    - pairs with an underscore left (identifiers: ``client_encoding``,
      ``G_GNUC_INTERNAL``) are dropped;
    - pairs whose source or target has fewer than ``min_words`` or more than
      ``max_words`` words are dropped.

    Pairs are deduplicated on the cleaned source, the first one kept.

    Parameters
    ----------
    lang : str, default="fr"
        The target language: the catalog directory's name ("fr", "de", "pt_BR").
    localedir : str or path, default="/usr/share/locale"
        The directory holding ``<lang>/LC_MESSAGES``.
    min_words, max_words : int, default=1, 12
        The number of whitespace-separated words of the source and the target.

    Returns
    -------
    list of (str, str)
        The (English, ``lang``) pairs.

    Examples
    --------
    ``gettext_pairs("fr")`` reads the catalogs installed on the machine.
    Here, a catalog of three messages written with babel:

    >>> import os
    >>> import tempfile
    >>> from babel.messages.catalog import Catalog
    >>> from babel.messages.mofile import write_mo
    >>> from crnn.datasets import gettext_pairs
    >>> catalog = Catalog(locale="fr")
    >>> for english, french in [("_Open File", "_Ouvrir le fichier"),   # an accelerator
    ...                         ("Save %s", "Enregistrer %s"),          # a placeholder
    ...                         ("Quit", "Quitter")]:
    ...     message = catalog.add(english, french)
    >>> with tempfile.TemporaryDirectory() as localedir:
    ...     os.makedirs(os.path.join(localedir, "fr", "LC_MESSAGES"))
    ...     with open(os.path.join(localedir, "fr", "LC_MESSAGES", "demo.mo"), "wb") as f:
    ...         write_mo(f, catalog)
    ...     pairs = gettext_pairs("fr", localedir=localedir)
    >>> sorted(pairs)
    [('Open File', 'Ouvrir le fichier'), ('Quit', 'Quitter')]
    """
    if not isinstance(lang, str) or not lang or os.sep in lang:
        raise ValueError(f"lang must be a locale directory name such as 'fr'; got {lang!r}.")
    for name, value in (("min_words", min_words), ("max_words", max_words)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    if max_words < min_words:
        raise ValueError(f"max_words={max_words} is below min_words={min_words}.")
    directory = os.path.join(os.fspath(localedir), lang, "LC_MESSAGES")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no gettext catalog directory {directory!r}.")
    catalogs = [_read_catalog(os.path.join(directory, f))
                for f in sorted(os.listdir(directory)) if f.endswith(".mo")]
    raw = [pair for pairs in catalogs if pairs for pair in pairs]
    vocabulary = {w.lower() for text in (s for pair in raw for s in pair)
                  for w in _WORD.findall(text) if "_" not in text}

    result, seen = [], set()
    for src, tgt in raw:
        if any(_FORMAT.search(s) or _MARKUP.search(s) or _has_control(s) for s in (src, tgt)):
            continue
        src, tgt = (" ".join(_strip_ampersand(_strip_underscore(a, b, vocabulary)).split())
                    for a, b in ((src, tgt), (tgt, src)))
        if "_" in src or "_" in tgt or src in seen:
            continue
        if min_words <= len(src.split()) <= max_words and \
                min_words <= len(tgt.split()) <= max_words:
            seen.add(src)
            result.append((src, tgt))
    return result


def _check_n_samples(n_samples):
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or \
            n_samples < 0:
        raise ValueError(f"n_samples must be an integer >= 0; got {n_samples!r}.")
    return int(n_samples)


def make_number_phrases(n_samples, low=0, high=10**6, random_state=None, exclude=None,
                        distribution="log-uniform"):
    """Integers written in English words -> the same in French (num2words).

    Parameters
    ----------
    n_samples : int
        The number of pairs (drawn with replacement: numbers may repeat).
    low, high : int, default=0, 10**6
        The integers are drawn from [low, high).
    random_state : int, RandomState instance or None
        Seeds the draws.
    exclude : iterable of int, optional
        Integers never drawn (held out for a test set).
    distribution : {"log-uniform", "uniform"}, default="log-uniform"
        "log-uniform": log(x - low + 1) is uniform, so every number of digits
        is about as frequent (2, 57 and 300918 alike); "uniform": every
        integer equally likely (from [0, 10**6), nine in ten have six digits).

    Returns
    -------
    english, french : list of str
        ``num2words(x, lang="en")`` and ``num2words(x, lang="fr")``, e.g.
        "ninety-seven" and "quatre-vingt-dix-sept".

    Examples
    --------
    >>> from crnn.datasets import make_number_phrases
    >>> english, french = make_number_phrases(3, high=100, random_state=0)
    >>> english
    ['eleven', 'twenty-six', 'fifteen']
    >>> french
    ['onze', 'vingt-six', 'quinze']
    """
    try:
        from num2words import num2words
    except ImportError as exc:              # pragma: no cover - depends on the environment
        raise ImportError("make_number_phrases needs num2words: pip install num2words") \
            from exc
    n_samples = _check_n_samples(n_samples)
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{name} must be an integer; got {value!r}.")
    low, high = int(low), int(high)
    if high <= low:
        raise ValueError(f"high must be above low; got low={low}, high={high}.")
    if distribution not in ("log-uniform", "uniform"):
        raise ValueError("distribution must be 'log-uniform' or 'uniform'; got "
                         f"{distribution!r}.")
    exclude = {int(x) for x in exclude} if exclude is not None else set()
    if sum(low <= x < high for x in exclude) >= high - low:
        raise ValueError(f"exclude holds every integer of [{low}, {high}).")
    rng = check_random_state(random_state)
    numbers_ = []
    while len(numbers_) < n_samples:
        size = n_samples - len(numbers_)
        if distribution == "uniform":
            draws = rng.randint(low, high, size=size, dtype=np.int64) \
                if -2**63 <= low and high <= 2**63 - 1 \
                else [low + int(u * (high - low)) for u in rng.random_sample(size)]
        else:
            draws = [low + int(math.exp(u)) - 1
                     for u in rng.uniform(0.0, math.log(high - low + 1), size=size)]
        numbers_ += [int(x) for x in draws if low <= x < high and int(x) not in exclude]
    return ([num2words(x, lang="en") for x in numbers_],
            [num2words(x, lang="fr") for x in numbers_])


# babel formats: the locale's own ("full": "Wednesday, March 3, 2021", "long",
# "medium") and patterns (https://unicode.org/reports/tr35/tr35-dates.html).
# Numeric dates are day first (dd/MM/y, dd.MM.y) or ISO, never month first, so
# that every string names one date; years always have four digits.
DATE_FORMATS = ("full", "long", "medium", "d MMMM y", "d MMM y", "EEE d MMM y",
                "EEEE d MMMM y", "MMMM d, y", "dd/MM/y", "dd.MM.y", "y-MM-dd")
_FIRST_DAY, _LAST_DAY = date(1900, 1, 1), date(2099, 12, 31)


def make_dates(n_samples, random_state=None, languages=("en", "fr", "de", "es")):
    """Dates written in many formats and languages -> "YYYY-MM-DD".

    Each sample is a day drawn uniformly from 1900-01-01 to 2099-12-31, a
    language drawn uniformly from ``languages`` and a format drawn uniformly
    from ``DATE_FORMATS``, rendered with ``babel.dates.format_date``: "3 March
    2021", "March 3, 2021", "Wed 3 Mar 2021", "mercredi 3 mars 2021",
    "3. März 2021", "3 de marzo de 2021", "03/03/2021", "2021-03-03", ...

    Parameters
    ----------
    n_samples : int
        The number of dates (drawn with replacement).
    random_state : int, RandomState instance or None
        Seeds the draws.
    languages : sequence of str, default=("en", "fr", "de", "es")
        babel locale names ("en", "fr_CA", ...) for month and weekday names.

    Returns
    -------
    sources : list of str
        The written dates.
    targets : list of str
        The same dates in ISO 8601, "YYYY-MM-DD".

    Examples
    --------
    >>> from crnn.datasets import make_dates
    >>> sources, targets = make_dates(4, random_state=0, languages=["en"])
    >>> sources
    ['29 November 2086', 'April 14, 2019', '02.09.2016', '24 August 2025']
    >>> targets
    ['2086-11-29', '2019-04-14', '2016-09-02', '2025-08-24']
    """
    try:
        from babel import Locale, UnknownLocaleError
        from babel.dates import format_date
    except ImportError as exc:              # pragma: no cover - depends on the environment
        raise ImportError("make_dates needs babel: pip install babel") from exc
    n_samples = _check_n_samples(n_samples)
    if isinstance(languages, str) or not len(languages):
        raise ValueError("languages must be a non-empty list of locale names; got "
                         f"{languages!r}.")
    try:
        locales = [Locale.parse(lang) for lang in languages]
    except (UnknownLocaleError, ValueError, TypeError) as exc:
        raise ValueError(f"languages must be babel locale names; got {languages!r} "
                         f"({exc}).") from None
    rng = check_random_state(random_state)
    n_days = (_LAST_DAY - _FIRST_DAY).days + 1
    days = rng.randint(0, n_days, size=n_samples)
    langs = rng.randint(0, len(locales), size=n_samples)
    formats = rng.randint(0, len(DATE_FORMATS), size=n_samples)
    sources, targets = [], []
    for d, lang, fmt in zip(days, langs, formats):
        day = _FIRST_DAY + timedelta(days=int(d))
        sources.append(format_date(day, DATE_FORMATS[fmt], locale=locales[lang]))
        targets.append(day.isoformat())
    return sources, targets
