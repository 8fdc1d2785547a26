"""The machinery behind every formula (the formulas themselves are the family modules one
level up: ``losses``, ``activations``, ``regularisation``, ``normalisation``).

=================  ======================================================================
``spec``           the declaration of a formula (``formula``, ``Formula``, ``FORMULAS``)
``pipeline``       the one call path: bind, validate, place, allocate, launch, return
``templates``      one host-side template per pattern (shapes, outputs, launch)
``cpu``            the CPU kernels of every pattern (``@njit``, parallel and serial)
``gpu``            the GPU kernels of every pattern (``@cuda.jit``), same arguments
``primitives``     matrix products, scans, sorts, Cholesky: library calls, per backend
``codegen``        kernel source expanded for an arity (inputs, outputs, accumulators)
``cuda``           the one import of the CUDA compiler (numba-cuda today)
``jit``            compilation, the on-disk cache, parallel and serial twins
``threads``        the threading layer (TBB) and the size below which calls run serially
``scalar``         NaN-preserving scalar helpers (clip, sign, maximum, finalisers)
``vmath``          vectorisable exp/log/tanh/erf for the CPU, libdevice on the GPU
``random``         the counter-based generator (dropout; initialisers, k-means++ next)
``stats``          Welford/Chan moments per column and per row
``pointers``       element access through addresses (a foreach over a list of arrays)
=================  ======================================================================
"""
