"""Type stub for the compiled ``cypool._avg`` (average pooling kernels)."""

from typing import Optional

import numpy as np

from cypool._geometry import _Geometry

def avg_pool_forward(x: np.ndarray, out: np.ndarray, geometry: _Geometry,
                     count_include_pad: bool, divisor_override: int, channels_last: bool,
                     nthreads: int, naive: bool = False) -> None: ...
def simd_level(cap: Optional[int] = None) -> int: ...
def small_plane_limit(limit: Optional[int] = None) -> int: ...
def avg_pool_backward(grad_out: np.ndarray, grad_in: np.ndarray, geometry: _Geometry,
                      count_include_pad: bool, divisor_override: int, channels_last: bool,
                      nthreads: int, naive: bool = False) -> None: ...
