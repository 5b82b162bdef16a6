"""Type stub for the compiled ``cypool._unpool`` (max unpooling)."""

import numpy as np

def max_unpool_forward(x: np.ndarray, indices: np.ndarray, out: np.ndarray,
                       channels_last: bool, nthreads: int, zeroed: bool = ...) -> int: ...
def max_unpool_backward(grad_out: np.ndarray, indices: np.ndarray, grad_in: np.ndarray,
                        channels_last: bool, nthreads: int, check: bool = False) -> int: ...
