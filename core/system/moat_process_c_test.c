/* The C API across processes (issue 15 item 1), from C, with real child
 * processes: this binary is the broker, and re-executes itself as the
 * children ("invited-child", "named-child PATH"). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/system/moat.h"

static int g_passed = 0;
static int g_failed = 0;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (cond) {                                                              \
      ++g_passed;                                                            \
    } else {                                                                 \
      ++g_failed;                                                            \
      fprintf(stderr, "[%d] %s:%d: CHECK failed: %s (last error: %s)\n",      \
              (int)getpid(), __FILE__, __LINE__, #cond, MoatGetLastErrorMessage()); \
    }                                                                        \
  } while (0)

#define CHECK_RESULT(expr, expected)                                              \
  do {                                                                            \
    MoatResult r_ = (expr);                                                       \
    if (r_ == (expected)) {                                                       \
      ++g_passed;                                                                 \
    } else {                                                                      \
      ++g_failed;                                                                 \
      fprintf(stderr, "[%d] %s:%d: %s returned %s, expected %s (last error: %s)\n", \
              (int)getpid(), __FILE__, __LINE__, #expr, MoatResultToString(r_),   \
              MoatResultToString(expected), MoatGetLastErrorMessage());          \
    }                                                                             \
  } while (0)

static void SleepMs(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* Reads the next message, waiting up to 20 s (1 ms naps: this test has no
 * event loop). Returns the result of the last read. */
static MoatResult ReadWaiting(MoatHandle h, char* buf, uint32_t* n, MoatHandle* handles,
                              uint32_t* nh, int* fds, uint32_t* nf) {
  const uint32_t cap_n = *n, cap_h = nh ? *nh : 0, cap_f = nf ? *nf : 0;
  for (int i = 0; i < 20000; ++i) {
    *n = cap_n;
    if (nh) *nh = cap_h;
    if (nf) *nf = cap_f;
    MoatResult r = MoatReadMessage(h, NULL, buf, n, handles, nh, fds, nf);
    if (r != MOAT_RESULT_SHOULD_WAIT) return r;
    SleepMs(1);
  }
  return MOAT_RESULT_SHOULD_WAIT;
}

/* Waits until the peer of `h` is closed (the parent's "you may exit"). */
static void WaitPeerClosed(MoatHandle h) {
  for (int i = 0; i < 20000; ++i) {
    struct MoatHandleSignalsState s;
    s.struct_size = sizeof(s);
    if (MoatQueryHandleSignalsState(h, &s) != MOAT_RESULT_OK ||
        (s.satisfied_signals & MOAT_HANDLE_SIGNAL_PEER_CLOSED)) {
      return;
    }
    SleepMs(1);
  }
}

static int Finish(void) {
  fprintf(stderr, "[%d] %d passed, %d failed\n", (int)getpid(), g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}

/* Child launched by MoatLaunchChild: receives "hello" + a pipe end + a
 * descriptor, answers over the pipe and the descriptor. */
static int InvitedChild(void) {
  MoatHandle boot;
  CHECK_RESULT(MoatAcceptInvitation(-1, NULL, &boot), MOAT_RESULT_OK);
  /* A second node in one process is refused. */
  MoatHandle again;
  CHECK_RESULT(MoatAcceptInvitation(-1, NULL, &again), MOAT_RESULT_FAILED_PRECONDITION);
  char buf[16];
  uint32_t n = sizeof(buf), nh = 1, nf = 1;
  MoatHandle pipe = MOAT_HANDLE_INVALID;
  int fd = -1;
  CHECK_RESULT(ReadWaiting(boot, buf, &n, &pipe, &nh, &fd, &nf), MOAT_RESULT_OK);
  CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
  CHECK(nh == 1 && nf == 1);
  CHECK_RESULT(MoatWriteMessage(pipe, "pong", 4, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  CHECK(write(fd, "fd-ok", 5) == 5);
  close(fd);
  WaitPeerClosed(boot);
  fflush(stderr);
  /* The node's IO threads are still running: leave without static teardown. */
  _exit(Finish());
}

static int PeerClosed(MoatHandle h) {
  struct MoatHandleSignalsState st;
  st.struct_size = sizeof(st);
  return MoatQueryHandleSignalsState(h, &st) == MOAT_RESULT_OK &&
         (st.satisfied_signals & MOAT_HANDLE_SIGNAL_PEER_CLOSED) != 0;
}

/* Child that sends the broker something its embedder rejects, and must then
 * find itself cut off (its bootstrap pipe PEER_CLOSED). */
static int BadChild(void) {
  MoatHandle boot;
  CHECK_RESULT(MoatAcceptInvitation(-1, NULL, &boot), MOAT_RESULT_OK);
  const char* why = NULL;
  CHECK_RESULT(MoatGetBrokerLossReason(&why), MOAT_RESULT_NOT_FOUND);
  CHECK_RESULT(MoatWriteMessage(boot, "evil", 4, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  WaitPeerClosed(boot);
  CHECK(PeerClosed(boot));
  /* Issue 15 item 2: told why, in the broker's words. */
  CHECK_RESULT(MoatGetBrokerLossReason(&why), MOAT_RESULT_OK);
  CHECK(why != NULL && strstr(why, "cut this node off") != NULL);
  CHECK(why != NULL && strstr(why, "evil is not a valid request") != NULL);
  fflush(stderr);
  _exit(Finish());
}

/* Child that echoes every message on its bootstrap pipe until it closes. */
static int EchoChild(void) {
  MoatHandle boot;
  CHECK_RESULT(MoatAcceptInvitation(-1, NULL, &boot), MOAT_RESULT_OK);
  for (;;) {
    char buf[64];
    uint32_t n = sizeof(buf);
    MoatResult r = ReadWaiting(boot, buf, &n, NULL, NULL, NULL, NULL);
    if (r != MOAT_RESULT_OK) {
      CHECK_RESULT(r, MOAT_RESULT_FAILED_PRECONDITION); /* the broker closed it */
      break;
    }
    CHECK_RESULT(MoatWriteMessage(boot, buf, n, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  }
  fflush(stderr);
  _exit(Finish());
}

/* Child that receives a read-only shared buffer and reads what the broker
 * draws into it. */
static int BufferChild(void) {
  MoatHandle boot;
  CHECK_RESULT(MoatAcceptInvitation(-1, NULL, &boot), MOAT_RESULT_OK);
  char msg[16];
  uint32_t n = sizeof(msg), nf = 1;
  int fd = -1;
  CHECK_RESULT(ReadWaiting(boot, msg, &n, NULL, NULL, &fd, &nf), MOAT_RESULT_OK);
  CHECK(nf == 1);
  struct MoatSharedBufferInfo info;
  info.struct_size = sizeof(info);
  CHECK_RESULT(MoatGetSharedBufferInfo(fd, &info), MOAT_RESULT_OK);
  CHECK(info.size == 8192 && (info.flags & MOAT_SHARED_BUFFER_INFO_FLAG_READ_ONLY));
  void* rw = NULL;
  uint64_t size = 0;
  CHECK_RESULT(MoatMapSharedBuffer(fd, NULL, &rw, &size), MOAT_RESULT_FAILED_PRECONDITION);
  struct MoatMapSharedBufferOptions ro = {sizeof(ro), MOAT_MAP_SHARED_BUFFER_FLAG_READ_ONLY};
  void* data = NULL;
  CHECK_RESULT(MoatMapSharedBuffer(fd, &ro, &data, &size), MOAT_RESULT_OK);
  CHECK(size == 8192 && data != NULL && memcmp(data, "frame 1", 7) == 0);
  CHECK_RESULT(MoatWriteMessage(boot, "seen 1", 6, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  n = sizeof(msg);
  CHECK_RESULT(ReadWaiting(boot, msg, &n, NULL, NULL, NULL, NULL), MOAT_RESULT_OK);
  CHECK(data != NULL && memcmp(data, "frame 2", 7) == 0); /* drawn after sending */
  CHECK_RESULT(MoatWriteMessage(boot, "seen 2", 6, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  CHECK_RESULT(MoatUnmapSharedBuffer(data, size), MOAT_RESULT_OK);
  close(fd);
  WaitPeerClosed(boot);
  fflush(stderr);
  _exit(Finish());
}

/* Child started with a plain fork+exec: joins the broker's named socket. */
static int NamedChild(const char* path) {
  MoatHandle boot;
  CHECK_RESULT(MoatConnectToNamedBroker(path, NULL, &boot), MOAT_RESULT_OK);
  CHECK_RESULT(MoatWriteMessage(boot, "named hi", 8, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  WaitPeerClosed(boot);
  fflush(stderr);
  _exit(Finish());
}

static int WaitChild(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void TestStartBrokerNeedsAnEmptyTable(void) {
  MoatHandle a, b;
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &a, &b), MOAT_RESULT_OK);
  CHECK_RESULT(MoatStartBroker(NULL), MOAT_RESULT_FAILED_PRECONDITION);
  CHECK(strstr(MoatGetLastErrorMessage(), "handle") != NULL);
  int sock;
  MoatHandle boot;
  CHECK_RESULT(MoatInviteChild(NULL, &sock, &boot), MOAT_RESULT_FAILED_PRECONDITION);
  CHECK_RESULT(MoatClose(a), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(b), MOAT_RESULT_OK);
  CHECK_RESULT(MoatStartBroker(NULL), MOAT_RESULT_OK);
  CHECK_RESULT(MoatStartBroker(NULL), MOAT_RESULT_FAILED_PRECONDITION);
  /* A handle of the table before (closed anyway) is not valid in the node's. */
  CHECK_RESULT(MoatWriteMessage(a, "x", 1, NULL, 0, NULL, 0, NULL), MOAT_RESULT_INVALID_ARGUMENT);
}

static void TestLaunchedChildGetsPipesAndDescriptors(const char* self) {
  const char* args[] = {"invited-child"};
  int64_t pid = -1;
  MoatHandle boot;
  CHECK_RESULT(MoatLaunchChild(self, args, 1, NULL, &pid, &boot), MOAT_RESULT_OK);
  CHECK(pid > 0);
  MoatHandle x, y;
  CHECK_RESULT(MoatCreateMessagePipe(NULL, &x, &y), MOAT_RESULT_OK);
  int os_pipe[2];
  CHECK(pipe2(os_pipe, O_CLOEXEC) == 0);
  CHECK_RESULT(MoatWriteMessage(boot, "hello", 5, &y, 1, &os_pipe[1], 1, NULL), MOAT_RESULT_OK);
  char buf[16];
  uint32_t n = sizeof(buf);
  CHECK_RESULT(ReadWaiting(x, buf, &n, NULL, NULL, NULL, NULL), MOAT_RESULT_OK);
  CHECK(n == 4 && memcmp(buf, "pong", 4) == 0);
  ssize_t got = read(os_pipe[0], buf, sizeof(buf));
  CHECK(got == 5 && memcmp(buf, "fd-ok", 5) == 0);
  close(os_pipe[0]);
  CHECK_RESULT(MoatClose(x), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(boot), MOAT_RESULT_OK); /* the child may exit now */
  CHECK(WaitChild((pid_t)pid) == 0);
}

/* Issue 15 item 2: the embedder validates a message at a higher level and
 * reports it; the node that sent it is cut off, the other children are not. */
static void TestBadMessageCutsOffItsSender(const char* self) {
  const char* bad_args[] = {"bad-child"};
  const char* echo_args[] = {"echo-child"};
  int64_t bad_pid = -1, echo_pid = -1;
  MoatHandle bad, echo;
  CHECK_RESULT(MoatLaunchChild(self, bad_args, 1, NULL, &bad_pid, &bad), MOAT_RESULT_OK);
  CHECK_RESULT(MoatLaunchChild(self, echo_args, 1, NULL, &echo_pid, &echo), MOAT_RESULT_OK);

  char buf[16];
  uint32_t n = sizeof(buf);
  CHECK_RESULT(MoatWriteMessage(echo, "one", 3, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  CHECK_RESULT(ReadWaiting(echo, buf, &n, NULL, NULL, NULL, NULL), MOAT_RESULT_OK);
  CHECK(n == 3 && memcmp(buf, "one", 3) == 0);

  MoatHandle context = MOAT_HANDLE_INVALID;
  n = sizeof(buf);
  for (int i = 0; i < 20000; ++i) {
    n = sizeof(buf);
    MoatResult r = MoatReadMessageWithContext(bad, NULL, buf, &n, NULL, NULL, NULL, NULL, &context);
    if (r != MOAT_RESULT_SHOULD_WAIT) {
      CHECK_RESULT(r, MOAT_RESULT_OK);
      break;
    }
    SleepMs(1);
  }
  CHECK(n == 4 && memcmp(buf, "evil", 4) == 0);
  CHECK(context != MOAT_HANDLE_INVALID);
  const char* why = NULL;
  CHECK_RESULT(MoatGetBrokerLossReason(&why), MOAT_RESULT_FAILED_PRECONDITION); /* a broker */
  const char reason[] = "evil is not a valid request";
  CHECK_RESULT(MoatNotifyBadMessage(context, reason, sizeof(reason) - 1, NULL), MOAT_RESULT_OK);
  /* Consumed. */
  CHECK_RESULT(MoatNotifyBadMessage(context, NULL, 0, NULL), MOAT_RESULT_INVALID_ARGUMENT);
  /* The sender's pipes die here; it sees its own cut off (it exits 0 then). */
  for (int i = 0; i < 20000 && !PeerClosed(bad); ++i) SleepMs(1);
  CHECK(PeerClosed(bad));
  CHECK(WaitChild((pid_t)bad_pid) == 0);
  /* The other child is untouched. */
  n = sizeof(buf);
  CHECK_RESULT(MoatWriteMessage(echo, "two", 3, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  CHECK_RESULT(ReadWaiting(echo, buf, &n, NULL, NULL, NULL, NULL), MOAT_RESULT_OK);
  CHECK(n == 3 && memcmp(buf, "two", 3) == 0);
  CHECK_RESULT(MoatClose(bad), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(echo), MOAT_RESULT_OK);
  CHECK(WaitChild((pid_t)echo_pid) == 0);
}

/* Issue 15 item 7: a read-only shared buffer to another process. */
static void TestSharedBufferToChild(const char* self) {
  const char* args[] = {"buffer-child"};
  int64_t pid = -1;
  MoatHandle boot;
  CHECK_RESULT(MoatLaunchChild(self, args, 1, NULL, &pid, &boot), MOAT_RESULT_OK);
  int buffer = -1, read_only = -1;
  CHECK_RESULT(MoatCreateSharedBuffer(8192, NULL, &buffer), MOAT_RESULT_OK);
  void* data = NULL;
  uint64_t size = 0;
  CHECK_RESULT(MoatMapSharedBuffer(buffer, NULL, &data, &size), MOAT_RESULT_OK);
  CHECK(size == 8192);
  if (data != NULL) memcpy(data, "frame 1", 7);
  CHECK_RESULT(MoatDuplicateSharedBufferReadOnly(buffer, NULL, &read_only), MOAT_RESULT_OK);
  CHECK_RESULT(MoatWriteMessage(boot, "buf", 3, NULL, 0, &read_only, 1, NULL), MOAT_RESULT_OK);
  char buf[16];
  uint32_t n = sizeof(buf);
  CHECK_RESULT(ReadWaiting(boot, buf, &n, NULL, NULL, NULL, NULL), MOAT_RESULT_OK);
  CHECK(n == 6 && memcmp(buf, "seen 1", 6) == 0);
  if (data != NULL) memcpy(data, "frame 2", 7); /* the producer's mapping still writes */
  CHECK_RESULT(MoatWriteMessage(boot, "drawn", 5, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  n = sizeof(buf);
  CHECK_RESULT(ReadWaiting(boot, buf, &n, NULL, NULL, NULL, NULL), MOAT_RESULT_OK);
  CHECK(n == 6 && memcmp(buf, "seen 2", 6) == 0);
  CHECK_RESULT(MoatUnmapSharedBuffer(data, size), MOAT_RESULT_OK);
  close(buffer);
  CHECK_RESULT(MoatClose(boot), MOAT_RESULT_OK);
  CHECK(WaitChild((pid_t)pid) == 0);
}

static void TestNamedSocketChild(const char* self) {
  char path[108];
  const char* dir = getenv("TEST_TMPDIR");
  int len = snprintf(path, sizeof(path), "%s/moat-%d.sock", dir ? dir : "/tmp", (int)getpid());
  if (len < 0 || (size_t)len >= sizeof(path)) {
    /* Bazel's TEST_TMPDIR is often longer than a socket path may be. */
    snprintf(path, sizeof(path), "/tmp/moat-test-%d.sock", (int)getpid());
  }
  unlink(path);
  int server = -1;
  CHECK_RESULT(MoatCreateNamedServer(path, NULL, &server), MOAT_RESULT_OK);
  /* Nothing connecting yet on a non-blocking server: SHOULD_WAIT. */
  CHECK(fcntl(server, F_SETFL, O_NONBLOCK) == 0);
  MoatHandle boot;
  CHECK_RESULT(MoatAcceptNamedChild(server, NULL, &boot), MOAT_RESULT_SHOULD_WAIT);
  CHECK(fcntl(server, F_SETFL, 0) == 0);

  char* const argv[] = {(char*)self, (char*)"named-child", path, NULL};
  pid_t pid = fork();
  if (pid == 0) {
    execv(self, argv);
    _exit(127);
  }
  CHECK(pid > 0);
  CHECK_RESULT(MoatAcceptNamedChild(server, NULL, &boot), MOAT_RESULT_OK);
  char buf[16];
  uint32_t n = sizeof(buf);
  CHECK_RESULT(ReadWaiting(boot, buf, &n, NULL, NULL, NULL, NULL), MOAT_RESULT_OK);
  CHECK(n == 8 && memcmp(buf, "named hi", 8) == 0);
  CHECK_RESULT(MoatClose(boot), MOAT_RESULT_OK);
  CHECK(WaitChild(pid) == 0);
  close(server);
  unlink(path);
  CHECK_RESULT(MoatCreateNamedServer("", NULL, &server), MOAT_RESULT_INVALID_ARGUMENT);
  char too_long[200];
  memset(too_long, 'a', sizeof(too_long) - 1);
  too_long[sizeof(too_long) - 1] = '\0';
  CHECK_RESULT(MoatConnectToNamedBroker(too_long, NULL, &boot), MOAT_RESULT_INVALID_ARGUMENT);
}

/* Issue 15 item 4: a pollable trap on a pipe to another process. The
 * messages arrive on moat's IO thread; the handler must run only here, in
 * MoatDispatchTrapEvents, after the trap's descriptor became readable. */
static pthread_t g_main_thread;
static int g_pollable_events = 0;
static int g_pollable_off_thread = 0;

static void OnPollable(const struct MoatTrapEvent* event) {
  if (!pthread_equal(pthread_self(), g_main_thread)) ++g_pollable_off_thread;
  if (event->result == MOAT_RESULT_OK) ++g_pollable_events;
}

static void TestPollableTrapOnAPipeToAChild(const char* self) {
  g_main_thread = pthread_self();
  const char* args[] = {"echo-child"};
  int64_t pid = -1;
  MoatHandle echo, trap;
  CHECK_RESULT(MoatLaunchChild(self, args, 1, NULL, &pid, &echo), MOAT_RESULT_OK);
  struct MoatCreateTrapOptions options = {sizeof(options), MOAT_CREATE_TRAP_FLAG_POLLABLE};
  CHECK_RESULT(MoatCreateTrap(&OnPollable, &options, &trap), MOAT_RESULT_OK);
  CHECK_RESULT(MoatAddTrigger(trap, echo, MOAT_HANDLE_SIGNAL_READABLE,
                              MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, 1, NULL),
               MOAT_RESULT_OK);
  int fd = -1;
  CHECK_RESULT(MoatGetTrapDescriptor(trap, &fd), MOAT_RESULT_OK);
  for (int round = 0; round < 3; ++round) {
    uint32_t none = 0;
    CHECK_RESULT(MoatArmTrap(trap, NULL, &none, NULL), MOAT_RESULT_OK);
    CHECK_RESULT(MoatWriteMessage(echo, "ping", 4, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
    struct pollfd p = {fd, POLLIN, 0};
    CHECK(poll(&p, 1, 20000) == 1); /* the echo arrived on an IO thread */
    /* Level-triggered: still readable until dispatched. */
    CHECK(poll(&p, 1, 0) == 1);
    const int before = g_pollable_events;
    uint32_t dispatched = 0;
    CHECK_RESULT(MoatDispatchTrapEvents(trap, NULL, 4, &dispatched), MOAT_RESULT_OK);
    CHECK(dispatched == 1 && g_pollable_events == before + 1);
    CHECK(poll(&p, 1, 0) == 0);
    char buf[8];
    uint32_t n = sizeof(buf);
    CHECK_RESULT(MoatReadMessage(echo, NULL, buf, &n, NULL, NULL, NULL, NULL), MOAT_RESULT_OK);
    CHECK(n == 4 && memcmp(buf, "ping", 4) == 0);
  }
  CHECK(g_pollable_off_thread == 0);
  CHECK_RESULT(MoatClose(trap), MOAT_RESULT_OK);
  CHECK_RESULT(MoatClose(echo), MOAT_RESULT_OK);
  CHECK(WaitChild((pid_t)pid) == 0);
}

/* Issue 15 item 3: a non-blocking write never waits for a stopped child:
 * SHOULD_WAIT with WRITABLE unsatisfied, and the descriptor it carried is
 * still the caller's. Unknown write flags are UNIMPLEMENTED. */
static void TestNonBlockingWriteToAStoppedChild(const char* self) {
  const char* args[] = {"echo-child"};
  int64_t pid = -1;
  MoatHandle echo;
  CHECK_RESULT(MoatLaunchChild(self, args, 1, NULL, &pid, &echo), MOAT_RESULT_OK);
  struct MoatWriteMessageOptions unknown = {sizeof unknown, 2};
  CHECK_RESULT(MoatWriteMessage(echo, "x", 1, NULL, 0, NULL, 0, &unknown),
               MOAT_RESULT_UNIMPLEMENTED);
  /* One echo first: the child is connected (until then its end is local). */
  char buf[8];
  uint32_t n = sizeof(buf);
  CHECK_RESULT(MoatWriteMessage(echo, "one", 3, NULL, 0, NULL, 0, NULL), MOAT_RESULT_OK);
  CHECK_RESULT(ReadWaiting(echo, buf, &n, NULL, NULL, NULL, NULL), MOAT_RESULT_OK);
  CHECK(kill((pid_t)pid, SIGSTOP) == 0);
  struct MoatWriteMessageOptions nb = {sizeof nb, MOAT_WRITE_MESSAGE_FLAG_NON_BLOCKING};
  static char chunk[64 * 1024];
  MoatResult r = MOAT_RESULT_OK;
  int accepted = 0, fd = -1;
  for (; accepted < 4096; ++accepted) {
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    r = MoatWriteMessage(echo, chunk, sizeof chunk, NULL, 0, &fd, 1, &nb);
    if (r != MOAT_RESULT_OK) break;
  }
  CHECK(r == MOAT_RESULT_SHOULD_WAIT);
  CHECK(accepted > 0 && accepted < 4096);
  CHECK(fcntl(fd, F_GETFD) != -1); /* not consumed */
  close(fd);
  struct MoatHandleSignalsState st = {sizeof st, 0, 0};
  CHECK_RESULT(MoatQueryHandleSignalsState(echo, &st), MOAT_RESULT_OK);
  CHECK((st.satisfied_signals & MOAT_HANDLE_SIGNAL_WRITABLE) == 0);
  CHECK((st.satisfiable_signals & MOAT_HANDLE_SIGNAL_WRITABLE) != 0);
  CHECK(kill((pid_t)pid, SIGKILL) == 0);
  CHECK(WaitChild((pid_t)pid) == 128 + SIGKILL);
  CHECK_RESULT(MoatClose(echo), MOAT_RESULT_OK);
}

int main(int argc, char** argv) {
  if (argc >= 2 && strcmp(argv[1], "invited-child") == 0) return InvitedChild();
  if (argc >= 3 && strcmp(argv[1], "named-child") == 0) return NamedChild(argv[2]);
  if (argc >= 2 && strcmp(argv[1], "bad-child") == 0) return BadChild();
  if (argc >= 2 && strcmp(argv[1], "echo-child") == 0) return EchoChild();
  if (argc >= 2 && strcmp(argv[1], "buffer-child") == 0) return BufferChild();
  MoatHandle boot;
  /* Not launched by a broker: no invitation to accept. */
  CHECK_RESULT(MoatAcceptInvitation(-1, NULL, &boot), MOAT_RESULT_NOT_FOUND);
  TestStartBrokerNeedsAnEmptyTable();
  TestLaunchedChildGetsPipesAndDescriptors("/proc/self/exe");
  TestNamedSocketChild("/proc/self/exe");
  TestBadMessageCutsOffItsSender("/proc/self/exe");
  TestSharedBufferToChild("/proc/self/exe");
  TestPollableTrapOnAPipeToAChild("/proc/self/exe");
  TestNonBlockingWriteToAStoppedChild("/proc/self/exe");
  fflush(stdout);
  fflush(stderr);
  _exit(Finish());
}
