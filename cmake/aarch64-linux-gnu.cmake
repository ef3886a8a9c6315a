# Cross-compile for 64-bit ARM Linux with Debian's GNU cross toolchain
# (apt-get install g++-aarch64-linux-gnu). Use with -DPYLLONG_NATIVE=OFF: -march=native
# would describe the build host, not the target. See tools/check_aarch64.sh.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(PYLLONG_CROSS_PREFIX aarch64-linux-gnu- CACHE STRING "prefix of the cross tools")
set(CMAKE_C_COMPILER ${PYLLONG_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${PYLLONG_CROSS_PREFIX}g++)

# Debian installs the target's libraries and headers here.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Lets `ctest` / add_test run target binaries under qemu when it is installed.
find_program(PYLLONG_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(PYLLONG_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PYLLONG_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
endif()
