// Compile-time checks that the public header agrees with the implementation:
// the limits moat.h exports for callers are the ones limits/limits.h enforces.
// Built into libmoat (//packaging:libmoat), so a drift fails the build.
#include "core/system/moat.h"
#include "limits/limits.h"

static_assert(MOAT_MAX_MESSAGE_PAYLOAD_SIZE == moat::limits::MAX_MESSAGE_PAYLOAD_SIZE,
              "moat.h MOAT_MAX_MESSAGE_PAYLOAD_SIZE != limits::MAX_MESSAGE_PAYLOAD_SIZE");
static_assert(MOAT_MAX_MESSAGE_FD_COUNT == moat::limits::MAX_MESSAGE_FD_COUNT,
              "moat.h MOAT_MAX_MESSAGE_FD_COUNT != limits::MAX_MESSAGE_FD_COUNT");
static_assert(MOAT_MAX_MESSAGE_HANDLE_COUNT == moat::limits::MAX_MESSAGE_HANDLE_COUNT,
              "moat.h MOAT_MAX_MESSAGE_HANDLE_COUNT != limits::MAX_MESSAGE_HANDLE_COUNT");
static_assert(MOAT_VERSION == MOAT_VERSION_MAJOR * 10000 + MOAT_VERSION_MINOR * 100 + MOAT_VERSION_PATCH);
static_assert(MOAT_VERSION_MINOR < 100 && MOAT_VERSION_PATCH < 100, "MOAT_VERSION packs two digits each");
