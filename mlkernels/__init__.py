"""mlkernels: fused Numba kernels for the core ML formulas, on the CPU and on CUDA GPUs.

``import mlkernels as mk``; every function takes NumPy data (CPU kernel) or CUDA arrays
(GPU kernel) and returns the caller's kind of array. Nothing is compiled at import.
"""

from mlkernels._core.pipeline import DeviceMismatchError
from mlkernels._version import __version__
from mlkernels.activations import (
    elu,
    elu_grad,
    gelu,
    gelu_grad,
    leaky_relu,
    leaky_relu_grad,
    log_softmax,
    log_softmax_grad,
    mish,
    mish_grad,
    relu,
    relu_grad,
    selu,
    selu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    softmax_grad,
    swish,
    swish_grad,
    tanh,
    tanh_grad,
)
from mlkernels.config import cuda_available, launch_config, precompile, show_config
from mlkernels.gradients import (
    clip_by_global_norm,
    clip_by_value,
    grad_check,
    gradient_stats,
    layer_grad_norms,
    numerical_gradient,
)
from mlkernels.losses import (
    bce,
    bce_grad,
    bce_value_and_grad,
    cce,
    cce_grad,
    cce_value_and_grad,
    contrastive,
    contrastive_grad,
    contrastive_value_and_grad,
    focal,
    focal_grad,
    focal_value_and_grad,
    hinge,
    hinge_grad,
    hinge_value_and_grad,
    huber,
    huber_grad,
    huber_value_and_grad,
    js_divergence,
    js_divergence_grad,
    js_divergence_value_and_grad,
    kl_divergence,
    kl_divergence_grad,
    kl_divergence_value_and_grad,
    log_cosh,
    log_cosh_grad,
    log_cosh_value_and_grad,
    mae,
    mae_grad,
    mae_value_and_grad,
    mse,
    mse_grad,
    mse_value_and_grad,
    nll,
    nll_grad,
    nll_value_and_grad,
    rmse,
    rmse_grad,
    rmse_value_and_grad,
    squared_hinge,
    squared_hinge_grad,
    squared_hinge_value_and_grad,
)
from mlkernels.metrics import (
    accuracy,
    confusion,
    confusion_matrix,
    dcg,
    f1,
    f_beta,
    mape,
    mcc,
    ndcg,
    ndcg_score,
    precision,
    r2,
    recall,
    roc_auc,
)
from mlkernels.normalisation import batch_norm, batch_norm_grad, layer_norm, layer_norm_grad
from mlkernels.optimisers import NAG, SGD, Adam, AdamW, SGDMomentum, sgd_update
from mlkernels.probability import (
    cross_entropy,
    entropy,
    gaussian_logpdf,
    gaussian_mle,
    gaussian_pdf,
    mutual_information,
    mutual_information_labels,
    mvn_logpdf,
    mvn_pdf,
    perplexity,
)
from mlkernels.regularisation import (
    dropout,
    elastic_net,
    elastic_net_grad,
    l1_grad,
    l1_loss,
    l2_grad,
    l2_loss,
    max_norm,
)
from mlkernels.schedules import (
    Schedule,
    cosine_annealing,
    cyclical_lr,
    exp_decay,
    schedule,
    step_decay,
    warmup_cosine,
)

__all__ = [name for name in dir() if not name.startswith("_")] + ["__version__"]
