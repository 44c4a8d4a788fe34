/**
 * @file
 * pollux/version.h - the version of the headers being compiled against.
 *
 * Versions follow semantic versioning (docs/USING.md, "Versions and ABI").
 * Before 1.0 a minor release may change the API and the ABI; the shared
 * library's soname (libpollux.so.0.MINOR) changes with it, so a program
 * never loads a library it was not built for.
 */
#ifndef POLLUX_VERSION_H
#define POLLUX_VERSION_H

/** @addtogroup runtime
 * @{
 */

/** Major version: an incompatible API or ABI change once at 1.0 or later. */
#define PX_VERSION_MAJOR 0
/** Minor version: new features; before 1.0 it may also break the ABI. */
#define PX_VERSION_MINOR 1
/** Patch version: fixes only, same API and ABI. */
#define PX_VERSION_PATCH 0
/** The version as a string, "0.1.0". */
#define PX_VERSION_STRING "0.1.0"
/** The version as one number, 0xMMmmpp, for preprocessor comparisons. */
#define PX_VERSION_HEX \
  ((PX_VERSION_MAJOR << 16) | (PX_VERSION_MINOR << 8) | PX_VERSION_PATCH)

/** @} */

#endif /* POLLUX_VERSION_H */
