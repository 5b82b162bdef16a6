"""Type stub for the compiled ``cypool._lp`` (power-average pooling kernels)."""

from typing import Optional

import numpy as np

from cypool._geometry import _Geometry

def lp_pool_forward(x: np.ndarray, out: np.ndarray, geometry: _Geometry, norm_type: float,
                    channels_last: bool, nthreads: int, naive: bool = False) -> None: ...
def lp_pool_backward(grad_out: np.ndarray, x: np.ndarray, grad_in: np.ndarray,
                     geometry: _Geometry, norm_type: float, channels_last: bool,
                     nthreads: int, naive: bool = False) -> None: ...
def simd_level(cap: Optional[int] = None) -> int: ...
