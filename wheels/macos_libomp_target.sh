#!/bin/sh
# Print the MACOSX_DEPLOYMENT_TARGET for a wheel that vendors Homebrew's libomp:
# the macOS version libomp was built for (delocate refuses a lower target),
# or this Mac's major version when libomp is not installed yet.
lib="$(brew --prefix libomp)/lib/libomp.dylib"
target=""
if [ -f "$lib" ]; then
    target=$(otool -l "$lib" | awk '$1 == "minos" { print $2; exit }')
fi
if [ -z "$target" ]; then
    target="$(sw_vers -productVersion | cut -d. -f1).0"
fi
echo "$target"
