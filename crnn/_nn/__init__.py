"""The kernel interface: network layouts, sequence data, the engine and stepper
over the compiled kernels, the training loop, threads and SIMD levels."""
