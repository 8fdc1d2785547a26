"""asv benchmarks of mlkernels (``asv run``; configuration in ``asv.conf.json``).

* ``benchmarks_losses``: every loss, value / gradient / value-and-gradient, on the CPU and
  the GPU, with GB/s and the speedup over the NumPy formula as ``track_`` benchmarks; the
  NumPy formulas themselves; the machine's memory bandwidth.
* ``benchmarks_activations``: the elementwise activations and their derivatives, and the
  row functions softmax / log_softmax and their VJPs, each timed by mlkernels, the NumPy
  formula and PyTorch (a ``library`` parameter), with mlkernels' GB/s and its speedup over
  PyTorch on the large sizes as ``track_`` benchmarks; the read + write bandwidth.
* ``benchmarks_norms``: the same for the weight penalties, dropout, layer_norm, batch_norm
  and max_norm, and their gradients.
* ``benchmarks_training``: what users run, a NumPy MLP training loop (BLAS products
  between the formula calls; ``examples/train_mlp.py``) with the NumPy formulas and with
  mlkernels, alone and with PyTorch or scikit-learn working between epochs, and the
  speedup measured with epochs run alternately.
* ``compile_time``: a kernel's first call with a cold and with a warm disk cache.
"""
