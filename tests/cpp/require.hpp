// Skipping a test is allowed on a developer's machine that lacks an optional part, never where
// GT_REQUIRE_ALL_TESTS is set (CI): there a test that cannot run fails, so a missing library or
// instruction set cannot make the suite pass quietly.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#define GT_SKIP_OR_FAIL(reason)                                                            \
  do {                                                                                     \
    const char* gt_required = std::getenv("GT_REQUIRE_ALL_TESTS");                         \
    if (gt_required != nullptr && *gt_required != '\0' && std::string(gt_required) != "0") \
      FAIL() << "GT_REQUIRE_ALL_TESTS is set, and this test cannot run: " << (reason);     \
    GTEST_SKIP() << (reason);                                                              \
  } while (false)
