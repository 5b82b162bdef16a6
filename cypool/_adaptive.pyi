"""Type stub for the compiled ``cypool._adaptive`` (adaptive and global pooling kernels)."""

from typing import Optional, Tuple

import numpy as np

def adaptive_avg_forward(x: np.ndarray, out: np.ndarray, in_size: Tuple[int, int, int],
                         out_size: Tuple[int, int, int], channels_last: bool, nthreads: int,
                         naive: bool = False) -> None: ...
def adaptive_max_forward(x: np.ndarray, out: np.ndarray, indices: Optional[np.ndarray],
                         in_size: Tuple[int, int, int], out_size: Tuple[int, int, int],
                         channels_last: bool, nthreads: int, naive: bool = False) -> None: ...
def adaptive_avg_backward(grad_out: np.ndarray, grad_in: np.ndarray,
                          in_size: Tuple[int, int, int], out_size: Tuple[int, int, int],
                          channels_last: bool, nthreads: int, naive: bool = False) -> None: ...
def simd_level(cap: Optional[int] = None) -> int: ...
def small_plane_limit(limit: Optional[int] = None) -> int: ...
