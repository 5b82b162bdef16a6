"""Type stub for the compiled ``cypool._fractional`` (fractional max pooling)."""

from typing import Optional, Tuple

import numpy as np

def interval_starts(samples: np.ndarray, in_size: int, out_size: int, kernel: int) -> np.ndarray: ...
def window_starts(samples: np.ndarray, in_sizes: Tuple[int, ...], out_sizes: Tuple[int, ...],
                  kernel: Tuple[int, ...], nthreads: int = ...) -> np.ndarray: ...
def _type_code(dtype: np.dtype) -> int: ...
def fractional_max_pool_forward(x: np.ndarray, out: np.ndarray, indices: Optional[np.ndarray],
                                starts: np.ndarray, kernel: Tuple[int, int, int],
                                channels_last: bool, nthreads: int,
                                naive: bool = ...) -> None: ...
