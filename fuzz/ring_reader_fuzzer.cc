// Property: a RingReader consuming a ring that a hostile peer scribbles at
// any moment never reads or writes outside the ring (ASan: the ring is an
// exact-size heap block), never allocates more than the ring's max payload,
// stays broken once it reported an error, and -- while nobody scribbled --
// delivers exactly the records a RingWriter wrote, in order. The writer in
// turn refuses any impossible tail the peer publishes. Also: RingMemory::Adopt
// accepts a memfd exactly when it is sealed against shrink/grow/seal, of the
// expected size, and mappable writable.
//
// The peer's scribbles are interleaved deterministically from the input
// between (and, through the after-length-read hook, inside) reads instead of
// coming from a second thread: the same schedule replays byte for byte, it
// runs fast, and it stays clean under TSan in the replay tests. The hook
// covers the window a racing thread would hit (length read, payload not yet
// copied); the other windows are between two loads the reader does once each.
//
// Input: a sequence of ops, each an op byte then its arguments (choices from
// the end, bulk bytes from the front; see transport/ring/ring_seeds.cc).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <vector>

#include "fuzz/fuzz_harness.h"
#include "limits/limits.h"
#include "transport/ring/ring.h"

MOAT_FUZZ_COVERS("ring_record", "ring_peer_tail", "ring_memfd")

namespace {

using namespace moat::transport::ring;  // NOLINT

constexpr uint64_t kCap = moat::limits::RING_MIN_CAPACITY;
constexpr int kMaxOps = 256;

enum Op : uint8_t {
  kWrite = 0,          // u32 length (mod max payload + 1), then that many bulk bytes
  kRead = 1,           //
  kScribbleHead = 2,   // u8 mode (even: absolute u64, odd: += i16), value
  kScribbleTail = 3,   // same
  kScribbleByte = 4,   // u32 offset into the whole mapping, u8 value
  kArmHook = 5,        // u32 data offset, u32 value: written after the next length read
  kScribbleLength = 6, // u32 value at the record the reader reads next
  kImage = 7,          // u32 n, n bulk bytes into the data area, u64 head
  kAdopt = 8,          // u32 size delta (signed), u8 seals mask
};
constexpr uint8_t kOpCount = 9;

struct Hook {
  bool armed = false;
  uint32_t offset = 0;
  uint32_t value = 0;
};
Hook g_hook;

void RunHook(RingView view) {
  if (!g_hook.armed) return;
  g_hook.armed = false;
  std::memcpy(view.base + kControlSize + (g_hook.offset & (kCap - 4)), &g_hook.value, 4);
}

uint64_t GetU64(const RingView& v, size_t off) {
  uint64_t x;
  std::memcpy(&x, v.base + off, 8);
  return x;
}
void SetU64(const RingView& v, size_t off, uint64_t x) { std::memcpy(v.base + off, &x, 8); }

void CheckAdopt(moat::fuzz::Input& in) {
  const int32_t delta = static_cast<int32_t>(in.Integral<uint32_t>()) % 65;
  const uint8_t mask = in.Integral<uint8_t>();
  unsigned seals = 0;
  if (mask & 1) seals |= F_SEAL_SHRINK;
  if (mask & 2) seals |= F_SEAL_GROW;
  if (mask & 4) seals |= F_SEAL_WRITE;
  if (mask & 8) seals |= F_SEAL_FUTURE_WRITE;
  const bool seal_seal = (mask & 16) != 0;
  const bool use_memfd = (mask & 32) == 0;
  moat::UniqueFd fd(use_memfd ? ::memfd_create("fuzz-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING)
                              : ::open("/dev/zero", O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return;
  const off_t size = static_cast<off_t>(kControlSize + kCap) + delta * 8;
  if (use_memfd) {
    if (::ftruncate(fd.get(), size) != 0) return;
    if (seals != 0 && ::fcntl(fd.get(), F_ADD_SEALS, seals) != 0) return;
    if (seal_seal && ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SEAL) != 0) return;
  }
  const bool expect_ok = use_memfd && (seals & F_SEAL_SHRINK) && (seals & F_SEAL_GROW) &&
                         seal_seal && delta == 0 && !(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE));
  auto adopted = RingMemory::Adopt(std::move(fd), kCap);
  MOAT_FUZZ_CHECK(adopted.ok() == expect_ok, "Adopt accepted a bad memfd or refused a good one");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moat::fuzz::Input in(data, size);
  // Exact size, so ASan flags the first byte read or written outside.
  std::vector<uint64_t> storage((kControlSize + kCap) / 8, 0);
  const RingView view{reinterpret_cast<uint8_t*>(storage.data()), kCap};
  RingWriter writer(view, -1);
  RingReader reader(view, -1);
  internal::g_after_length_read_for_testing = RunHook;
  g_hook = Hook{};

  std::deque<std::vector<uint8_t>> expected;  // written, not yet read
  bool scribbled = false;
  bool reader_broken = false;
  std::string reader_error;
  bool adopted_once = false;
  std::vector<uint8_t> out;

  for (int ops = 0; ops < kMaxOps && !in.empty(); ++ops) {
    const uint8_t op = in.InRange<uint8_t>(0, kOpCount - 1);
    switch (op) {
      case kWrite: {
        const uint32_t n = in.InRange<uint32_t>(0, static_cast<uint32_t>(MaxPayload(kCap)));
        std::vector<uint8_t> payload = in.Bytes(n);
        auto wrote = writer.TryWrite(payload);
        if (!wrote.ok()) {
          MOAT_FUZZ_CHECK(scribbled, "writer refused a tail nobody scribbled");
        } else if (*wrote) {
          expected.push_back(std::move(payload));
        } else {
          MOAT_FUZZ_CHECK(scribbled || !expected.empty(), "writer found an empty ring full");
        }
        break;
      }
      case kRead: {
        auto got = reader.TryRead(&out);
        if (reader_broken) {
          MOAT_FUZZ_CHECK(!got.ok() && got.error().reason() == reader_error,
                          "a broken reader recovered");
          break;
        }
        if (!got.ok()) {
          MOAT_FUZZ_CHECK(scribbled, "reader refused a ring nobody scribbled");
          reader_broken = true;
          reader_error = got.error().reason();
          break;
        }
        if (!*got) {
          MOAT_FUZZ_CHECK(scribbled || expected.empty(), "reader missed a record");
          break;
        }
        MOAT_FUZZ_CHECK(out.size() <= MaxPayload(kCap), "record larger than the ring");
        if (!scribbled) {
          MOAT_FUZZ_CHECK(!expected.empty() && out == expected.front(),
                          "reader delivered a record that was not written next");
        }
        if (!expected.empty()) expected.pop_front();
        break;
      }
      case kScribbleHead:
      case kScribbleTail: {
        const size_t field = op == kScribbleHead ? kHeadOffset : kTailOffset;
        const uint8_t mode = in.Integral<uint8_t>();
        uint64_t value;
        if (mode % 2 == 0) {
          value = in.Integral<uint64_t>();
        } else {
          value = GetU64(view, field) + static_cast<uint64_t>(
                                             static_cast<int64_t>(in.Integral<int16_t>()));
        }
        SetU64(view, field, value);
        scribbled = true;
        break;
      }
      case kScribbleByte: {
        const uint32_t off = in.InRange<uint32_t>(0, static_cast<uint32_t>(kControlSize + kCap - 1));
        view.base[off] = in.Integral<uint8_t>();
        scribbled = true;
        break;
      }
      case kArmHook:
        g_hook.armed = true;
        g_hook.offset = in.Integral<uint32_t>();
        g_hook.value = in.Integral<uint32_t>();
        scribbled = true;  // pessimistic: it may fire on any later read
        break;
      case kScribbleLength: {
        // Where the reader will look next: the oldest unread record, if the
        // indices are still ours (the tail is published by the reader).
        const uint64_t pos = GetU64(view, kTailOffset) & (kCap - 8);
        const uint32_t value = in.Integral<uint32_t>();
        std::memcpy(view.base + kControlSize + pos, &value, 4);
        scribbled = true;
        break;
      }
      case kImage: {
        const uint32_t n = in.InRange<uint32_t>(0, static_cast<uint32_t>(kCap));
        std::vector<uint8_t> bytes = in.Bytes(n);
        if (!bytes.empty()) std::memcpy(view.base + kControlSize, bytes.data(), bytes.size());
        SetU64(view, kHeadOffset, in.Integral<uint64_t>());
        scribbled = true;
        break;
      }
      case kAdopt:
        if (!adopted_once) CheckAdopt(in);  // syscalls: once per input keeps it fast
        adopted_once = true;
        break;
    }
  }
  internal::g_after_length_read_for_testing = nullptr;
  return 0;
}
