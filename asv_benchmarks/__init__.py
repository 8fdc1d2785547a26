"""asv benchmarks of mlkernels (``asv run``; configuration in ``asv.conf.json``).

* ``benchmarks_losses``: every loss, value / gradient / value-and-gradient, on the CPU and
  the GPU, with GB/s and the speedup over the NumPy formula as ``track_`` benchmarks; the
  NumPy formulas themselves; the machine's memory bandwidth.
* ``compile_time``: a kernel's first call with a cold and with a warm disk cache.
"""
