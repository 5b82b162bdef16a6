"""Type stub for the compiled ``cypool._max`` (max pooling kernels)."""

from typing import Optional

import numpy as np

from cypool._geometry import _Geometry

def max_pool_forward(x: np.ndarray, out: np.ndarray, indices: Optional[np.ndarray],
                     geometry: _Geometry, channels_last: bool, nthreads: int,
                     naive: bool = False) -> None: ...
def simd_level(cap: Optional[int] = None) -> int: ...
def small_plane_limit(limit: Optional[int] = None) -> int: ...
def count_bad_indices(indices: np.ndarray, plane_size: int, nthreads: int) -> int: ...
def max_pool_backward(grad_out: np.ndarray, indices: np.ndarray, grad_in: np.ndarray,
                      in_plane: int, channels_last: bool, nthreads: int,
                      zeroed: bool = ...) -> int: ...
