"""cypool: CNN pooling for NumPy arrays on the CPU.

Max and average pooling (and the rest of the family), forward and backward,
in 1-D, 2-D and 3-D, exactly as ``torch.nn.functional`` defines them, as
OpenMP-threaded Cython kernels over NumPy arrays.

>>> import numpy as np, cypool
>>> x = np.random.default_rng(0).standard_normal((8, 16, 32, 32), dtype=np.float32)
>>> y, idx = cypool.max_pool2d(x, 3, 2, 1, return_indices=True)
>>> y.shape
(8, 16, 16, 16)
"""

from cypool._version import __version__
from cypool._threads import get_num_threads, set_num_threads
from cypool._memory import get_result_cache, set_result_cache
from cypool._config import show_config
from cypool._pooling import (
    avg_pool1d, avg_pool1d_backward, avg_pool2d, avg_pool2d_backward, avg_pool3d,
    avg_pool3d_backward, max_pool1d, max_pool1d_backward, max_pool2d, max_pool2d_backward,
    max_pool3d, max_pool3d_backward,
)
from cypool._family_reduce import (
    adaptive_avg_pool1d, adaptive_avg_pool1d_backward, adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward, adaptive_avg_pool3d, adaptive_avg_pool3d_backward,
    adaptive_max_pool1d, adaptive_max_pool1d_backward, adaptive_max_pool2d,
    adaptive_max_pool2d_backward, adaptive_max_pool3d, adaptive_max_pool3d_backward,
    global_avg_pool, global_avg_pool_backward, global_max_pool, global_max_pool_backward,
    lp_pool1d, lp_pool1d_backward, lp_pool2d, lp_pool2d_backward, lp_pool3d, lp_pool3d_backward,
)
from cypool._family_sample import (
    fractional_max_pool2d, fractional_max_pool2d_backward, fractional_max_pool3d,
    fractional_max_pool3d_backward, max_unpool1d, max_unpool1d_backward, max_unpool2d,
    max_unpool2d_backward, max_unpool3d, max_unpool3d_backward, stochastic_pool1d,
    stochastic_pool1d_backward, stochastic_pool2d, stochastic_pool2d_backward, stochastic_pool3d,
    stochastic_pool3d_backward,
)

__all__ = [
    "__version__", "get_num_threads", "set_num_threads", "show_config",
    "get_result_cache", "set_result_cache",
    "max_pool1d", "max_pool2d", "max_pool3d",
    "max_pool1d_backward", "max_pool2d_backward", "max_pool3d_backward",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "avg_pool1d_backward", "avg_pool2d_backward", "avg_pool3d_backward",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward", "adaptive_avg_pool3d_backward",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_max_pool1d_backward", "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward",
    "global_avg_pool", "global_max_pool", "global_avg_pool_backward", "global_max_pool_backward",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "lp_pool1d_backward", "lp_pool2d_backward", "lp_pool3d_backward",
    "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "max_unpool1d_backward", "max_unpool2d_backward", "max_unpool3d_backward",
    "fractional_max_pool2d", "fractional_max_pool3d",
    "fractional_max_pool2d_backward", "fractional_max_pool3d_backward",
    "stochastic_pool1d", "stochastic_pool2d", "stochastic_pool3d",
    "stochastic_pool1d_backward", "stochastic_pool2d_backward", "stochastic_pool3d_backward",
]

# Stateful layers for hand-written NumPy networks; built on the functions above.
from cypool import layers  # noqa: E402
