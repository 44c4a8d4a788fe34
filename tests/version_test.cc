// pollux/version.h: the three numbers, the string and the hex form agree,
// so tools/install (which reads PX_VERSION_STRING for the file names, the
// pkg-config and CMake versions and the soname check) and code that
// compares PX_VERSION_HEX see the same version.
#include <gtest/gtest.h>

#include <string>

#include "pollux.h"

TEST(Version, StringMatchesNumbers) {
  std::string want = std::to_string(PX_VERSION_MAJOR) + "." +
                     std::to_string(PX_VERSION_MINOR) + "." +
                     std::to_string(PX_VERSION_PATCH);
  EXPECT_EQ(want, PX_VERSION_STRING);
}

TEST(Version, HexOrdersLikeTheNumbers) {
  EXPECT_EQ(PX_VERSION_HEX, (PX_VERSION_MAJOR << 16) |
                                (PX_VERSION_MINOR << 8) | PX_VERSION_PATCH);
  EXPECT_LT(PX_VERSION_MINOR, 256);
  EXPECT_LT(PX_VERSION_PATCH, 256);
  // Usable in #if, the way programs test for a feature's release.
#if PX_VERSION_HEX < 0x000100
  FAIL() << "PX_VERSION_HEX is below 0.1.0, the first versioned release";
#endif
}
