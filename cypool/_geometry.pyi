"""Type stub for the compiled ``cypool._geometry`` (one-axis window geometry)."""

from typing import Tuple

from typing_extensions import TypeAlias

_Triple: TypeAlias = Tuple[int, int, int]
# Stub-only alias: the facade's (in, out, kernel, stride, pad_before, pad_after, dilation)
# geometry, each a (depth, height, width) triple, as the kernels take it.
_Geometry: TypeAlias = Tuple[_Triple, _Triple, _Triple, _Triple, _Triple, _Triple, _Triple]

def output_size(in_size: int, kernel: int, stride: int, pad_before: int, pad_after: int,
                dilation: int, ceil_mode: bool) -> int: ...
def max_window(o: int, in_size: int, kernel: int, stride: int, pad_before: int,
               dilation: int) -> Tuple[int, int]: ...
def avg_window(o: int, in_size: int, kernel: int, stride: int, pad_before: int,
               pad_after: int) -> Tuple[int, int, int]: ...
def adaptive_window(i: int, in_size: int, out_size: int) -> Tuple[int, int]: ...
