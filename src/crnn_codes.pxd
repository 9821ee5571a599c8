# The integer codes shared by the kernels and the Python layer: one source.
# Cython modules cimport these enums; crnn._kernels exports them to Python
# as CELL_CODES, LOSS_CODES and SOLVER_CODES.

cdef enum CellCode:
    CELL_TANH = 0       # Elman, tanh
    CELL_RELU = 1       # Elman, relu
    CELL_GRU = 2
    CELL_LSTM = 3

cdef enum LossCode:
    LOSS_MSE = 0        # mean squared error (torch.nn.MSELoss)
    LOSS_XENT = 1       # softmax cross-entropy (torch.nn.CrossEntropyLoss)
    LOSS_CTC = 2        # connectionist temporal classification (torch.nn.CTCLoss)
    LOSS_GIVEN = 3      # none: dLoss/d(head outputs) is given (a network stacked above)

cdef enum SolverCode:
    SOLVER_SGD = 0
    SOLVER_ADAM = 1
