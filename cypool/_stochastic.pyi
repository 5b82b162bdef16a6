"""Type stub for the compiled ``cypool._stochastic`` (stochastic pooling)."""

from typing import Optional

import numpy as np

from cypool._geometry import _Geometry

def stochastic_pool_forward(x: np.ndarray, uniforms: Optional[np.ndarray], out: np.ndarray,
                            indices: Optional[np.ndarray], geometry: _Geometry, training: bool,
                            channels_last: bool, nthreads: int) -> None: ...
def stochastic_pool_backward(grad_out: np.ndarray, indices: Optional[np.ndarray],
                             x: Optional[np.ndarray], grad_in: np.ndarray, geometry: _Geometry,
                             training: bool, channels_last: bool, nthreads: int) -> None: ...
