"""Type stub for the compiled ``cypool._avg`` (average pooling kernels)."""

import numpy as np

from cypool._geometry import _Geometry

def avg_pool_forward(x: np.ndarray, out: np.ndarray, geometry: _Geometry,
                     count_include_pad: bool, divisor_override: int, channels_last: bool,
                     nthreads: int, naive: bool = False) -> None: ...
def avg_pool_backward(grad_out: np.ndarray, grad_in: np.ndarray, geometry: _Geometry,
                      count_include_pad: bool, divisor_override: int, channels_last: bool,
                      nthreads: int, naive: bool = False) -> None: ...
