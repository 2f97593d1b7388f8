// An embedder's C++ program, built outside the repository against the
// installed headers (moat.h + the header-only moat.hpp) and library only
// (//packaging:install_test). Exit 0 on success.
#include <moat/moat.hpp>

#include <cstdio>
#include <cstring>
#include <string>

#define EXPECT(cond)                                                                    \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "embed.cc:%d: %s (moat: %s)\n", __LINE__, #cond,             \
                   MoatGetLastErrorMessage());                                          \
      return 1;                                                                         \
    }                                                                                   \
  } while (0)

static_assert(MOAT_MAX_MESSAGE_HANDLE_COUNT == 64, "moat.h limits are constants");

int main() {
  moat::api::Pipe one, two;
  EXPECT(moat::api::CreatePipe(&one) == MOAT_RESULT_OK);
  EXPECT(moat::api::CreatePipe(&two) == MOAT_RESULT_OK);
  int p[2];
  EXPECT(::pipe(p) == 0);
  const std::string text(1000, 'm');
  // The handle and the descriptor travel with the message.
  EXPECT(moat::api::Write(one.a.get(), text.data(), static_cast<uint32_t>(text.size()),
                          {two.a.release()}, {p[1]}) == MOAT_RESULT_OK);
  moat::api::Message m;
  EXPECT(moat::api::Read(one.b.get(), &m) == MOAT_RESULT_OK);
  EXPECT(std::string(m.bytes.begin(), m.bytes.end()) == text);
  EXPECT(m.handles.size() == 1 && m.fds.size() == 1);
  EXPECT(::write(m.fds[0], "y", 1) == 1);
  char c = 0;
  EXPECT(::read(p[0], &c, 1) == 1 && c == 'y');
  EXPECT(moat::api::Write(m.handles[0].get(), "ok", 2) == MOAT_RESULT_OK);
  moat::api::Message reply;
  EXPECT(moat::api::Read(two.b.get(), &reply) == MOAT_RESULT_OK);
  EXPECT(reply.bytes.size() == 2 && std::memcmp(reply.bytes.data(), "ok", 2) == 0);
  moat::api::Message none;
  EXPECT(moat::api::Read(two.b.get(), &none) == MOAT_RESULT_SHOULD_WAIT);
  // A local reader never makes a write wait: the non-blocking write goes.
  EXPECT(moat::api::TryWrite(m.handles[0].get(), "nb", 2) == MOAT_RESULT_OK);
  EXPECT(moat::api::Read(two.b.get(), &reply) == MOAT_RESULT_OK);
  EXPECT(reply.bytes.size() == 2 && std::memcmp(reply.bytes.data(), "nb", 2) == 0);
  ::close(p[0]);
  std::printf("embed.cc: moat %d.%d.%d ok\n", MOAT_VERSION_MAJOR, MOAT_VERSION_MINOR,
              MOAT_VERSION_PATCH);
  return 0;
}
