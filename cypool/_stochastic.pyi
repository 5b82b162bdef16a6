"""Type stub for the compiled ``cypool._stochastic`` (stochastic pooling)."""

from typing import Optional, Tuple

import numpy as np

from cypool._geometry import _Geometry

_Words = Tuple[int, int, int, int]

def pcg64_uniforms(words: _Words, start: int, n: int) -> np.ndarray: ...
def pcg64_advance(words: _Words, delta: int) -> Tuple[int, int]: ...
def stochastic_pool_forward(x: np.ndarray, uniforms: Optional[np.ndarray], out: np.ndarray,
                            indices: Optional[np.ndarray], geometry: _Geometry, training: bool,
                            channels_last: bool, nthreads: int,
                            stream: Optional[_Words] = None, naive: bool = False,
                            simd: bool = True) -> None: ...
def stochastic_pool_backward(grad_out: np.ndarray, indices: Optional[np.ndarray],
                             x: Optional[np.ndarray], grad_in: np.ndarray, geometry: _Geometry,
                             training: bool, channels_last: bool, nthreads: int) -> None: ...
