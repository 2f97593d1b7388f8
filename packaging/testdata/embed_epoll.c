/* An embedder's event loop, built outside the repository against the
 * installed headers and library only (//packaging:install_test): the broker
 * launches 64 children (itself) and serves them all from one epoll loop on
 * its own thread, through one pollable trap (MOAT_CREATE_TRAP_FLAG_POLLABLE)
 * with one trigger per child. Every trap handler must run on the loop's
 * thread, never on moat's IO threads. On the way it passes child 0 a message
 * with a pipe and a descriptor (both served by the same loop), and reports
 * child kEvilChild's message as bad, which cuts that child off (it reads why)
 * while the others carry on. Exit 0 on success. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <moat/moat.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define kChildren 64
#define kRounds 4     /* ping/pong round trips per child */
#define kEvilChild 7  /* answers its last ping with a message the broker rejects */
#define kPipeContext kChildren /* trigger context of the pipe child 0 got */

#define EXPECT(cond)                                                                  \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "embed_epoll.c[%d]:%d: %s (moat: %s)\n", (int)getpid(),         \
              __LINE__, #cond, MoatGetLastErrorMessage());                            \
      _exit(1);                                                                       \
    }                                                                                 \
  } while (0)

static const MoatHandleSignals kWatched =
    MOAT_HANDLE_SIGNAL_READABLE | MOAT_HANDLE_SIGNAL_PEER_CLOSED;

/* ---- The broker's loop ------------------------------------------------- */

static pthread_t g_loop_thread;
static int g_ready[kChildren + 1];
static int g_off_thread_events;

static void OnEvent(const struct MoatTrapEvent* event) {
  if (!pthread_equal(pthread_self(), g_loop_thread)) ++g_off_thread_events; /* racy: only != 0 matters */
  if (event->result != MOAT_RESULT_CANCELLED && event->trigger_context <= kChildren) {
    g_ready[event->trigger_context] = 1;
  }
}

static int CountThreads(void) {
  DIR* d = opendir("/proc/self/task");
  int n = 0;
  if (d == NULL) return -1;
  for (struct dirent* e; (e = readdir(d)) != NULL;) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static int Broker(void) {
  g_loop_thread = pthread_self();
  EXPECT(MoatStartBroker(NULL) == MOAT_RESULT_OK);
  const char* args[] = {"child", "0"};
  char index_arg[kChildren][8];
  int64_t pid[kChildren];
  MoatHandle boot[kChildren];
  int pongs[kChildren] = {0}, done[kChildren] = {0};
  MoatHandle trap;
  struct MoatCreateTrapOptions trap_options = {sizeof(trap_options), MOAT_CREATE_TRAP_FLAG_POLLABLE};
  EXPECT(MoatCreateTrap(&OnEvent, &trap_options, &trap) == MOAT_RESULT_OK);
  for (int c = 0; c < kChildren; ++c) {
    snprintf(index_arg[c], sizeof(index_arg[c]), "%d", c);
    args[1] = index_arg[c];
    EXPECT(MoatLaunchChild("/proc/self/exe", args, 2, NULL, &pid[c], &boot[c]) == MOAT_RESULT_OK);
    EXPECT(MoatAddTrigger(trap, boot[c], kWatched, MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED,
                          (uintptr_t)c, NULL) == MOAT_RESULT_OK);
  }
  /* Child 0's first ping carries a pipe and a descriptor. */
  MoatHandle x, y;
  int os_pipe[2];
  EXPECT(MoatCreateMessagePipe(NULL, &x, &y) == MOAT_RESULT_OK);
  EXPECT(pipe2(os_pipe, O_CLOEXEC) == 0);
  EXPECT(MoatAddTrigger(trap, x, kWatched, MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED,
                        kPipeContext, NULL) == MOAT_RESULT_OK);
  EXPECT(MoatWriteMessage(boot[0], "ping", 4, &y, 1, &os_pipe[1], 1, NULL) == MOAT_RESULT_OK);
  for (int c = 1; c < kChildren; ++c) {
    EXPECT(MoatWriteMessage(boot[c], "ping", 4, NULL, 0, NULL, 0, NULL) == MOAT_RESULT_OK);
  }
  int trap_fd = -1;
  EXPECT(MoatGetTrapDescriptor(trap, &trap_fd) == MOAT_RESULT_OK);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  EXPECT(ep >= 0);
  struct epoll_event watch = {.events = EPOLLIN};
  EXPECT(epoll_ctl(ep, EPOLL_CTL_ADD, trap_fd, &watch) == 0);

  int finished = 0, pipe_ok = 0, cut_off = 0, wakeups = 0, peak_threads = 0;
  while (finished < kChildren || !pipe_ok) {
    struct MoatTrapEvent blocking[kChildren + 1];
    for (int i = 0; i <= kChildren; ++i) blocking[i].struct_size = sizeof(blocking[i]);
    uint32_t num_blocking = kChildren + 1;
    const MoatResult armed = MoatArmTrap(trap, NULL, &num_blocking, blocking);
    if (armed == MOAT_RESULT_OK) {
      struct epoll_event out;
      const int n = epoll_wait(ep, &out, 1, 20000);
      EXPECT(n == 1); /* else: nothing happened for 20 s */
      ++wakeups;
      uint32_t dispatched = 0;
      EXPECT(MoatDispatchTrapEvents(trap, NULL, kChildren + 1, &dispatched) == MOAT_RESULT_OK);
    } else {
      EXPECT(armed == MOAT_RESULT_FAILED_PRECONDITION);
      for (uint32_t i = 0; i < num_blocking; ++i) g_ready[blocking[i].trigger_context] = 1;
    }
    const int threads = CountThreads();
    if (threads > peak_threads) peak_threads = threads;
    for (int c = 0; c <= kChildren; ++c) {
      if (!g_ready[c]) continue;
      g_ready[c] = 0;
      if (c == kPipeContext) {
        char buf[16];
        uint32_t n = sizeof(buf);
        if (MoatReadMessage(x, NULL, buf, &n, NULL, NULL, NULL, NULL) == MOAT_RESULT_OK) {
          EXPECT(n == 7 && memcmp(buf, "pipe-ok", 7) == 0);
          EXPECT(read(os_pipe[0], buf, sizeof(buf)) == 5 && memcmp(buf, "fd-ok", 5) == 0);
          EXPECT(MoatRemoveTrigger(trap, kPipeContext, NULL) == MOAT_RESULT_OK);
          pipe_ok = 1;
        }
        continue;
      }
      if (done[c]) continue;
      for (;;) {
        char buf[16];
        uint32_t n = sizeof(buf);
        MoatHandle context = MOAT_HANDLE_INVALID;
        const MoatResult r =
            MoatReadMessageWithContext(boot[c], NULL, buf, &n, NULL, NULL, NULL, NULL, &context);
        if (r == MOAT_RESULT_SHOULD_WAIT) break;
        EXPECT(r == MOAT_RESULT_OK); /* no child closes before it is done */
        if (n == 4 && memcmp(buf, "evil", 4) == 0) {
          EXPECT(c == kEvilChild && pongs[c] == kRounds - 1);
          const char reason[] = "evil is not a pong";
          EXPECT(MoatNotifyBadMessage(context, reason, sizeof(reason) - 1, NULL) == MOAT_RESULT_OK);
          EXPECT(MoatClose(boot[c]) == MOAT_RESULT_OK); /* and its trigger */
          done[c] = 1;
          ++cut_off;
          ++finished;
          break;
        }
        EXPECT(MoatClose(context) == MOAT_RESULT_OK);
        EXPECT(n == 4 && memcmp(buf, "pong", 4) == 0);
        if (++pongs[c] < kRounds) {
          EXPECT(MoatWriteMessage(boot[c], "ping", 4, NULL, 0, NULL, 0, NULL) == MOAT_RESULT_OK);
        } else {
          /* Done: closing the pipe tells the child (PEER_CLOSED) and cancels
           * the trigger (its CANCELLED comes with a later dispatch). */
          EXPECT(MoatClose(boot[c]) == MOAT_RESULT_OK);
          done[c] = 1;
          ++finished;
          break;
        }
      }
    }
  }
  EXPECT(g_off_thread_events == 0); /* every handler ran on this loop's thread */
  EXPECT(cut_off == 1);
  for (int c = 0; c < kChildren; ++c) {
    int status = 0;
    EXPECT(waitpid((pid_t)pid[c], &status, 0) == (pid_t)pid[c]);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT(epoll_ctl(ep, EPOLL_CTL_DEL, trap_fd, NULL) == 0);
  EXPECT(MoatClose(trap) == MOAT_RESULT_OK);
  printf("embed_epoll.c: %d children served from one epoll loop (%d wake-ups, %d round trips "
         "each, child %d cut off for a bad message, a pipe and a descriptor passed); "
         "broker threads at peak: %d\n",
         kChildren, wakeups, kRounds, kEvilChild, peak_threads);
  fflush(stdout);
  _exit(0);
}

/* ---- A child: its own small loop over one pollable trap ---------------- */

static void Ignore(const struct MoatTrapEvent* event) { (void)event; }

static int Child(int index) {
  MoatHandle boot, trap;
  EXPECT(MoatAcceptInvitation(-1, NULL, &boot) == MOAT_RESULT_OK);
  struct MoatCreateTrapOptions trap_options = {sizeof(trap_options), MOAT_CREATE_TRAP_FLAG_POLLABLE};
  EXPECT(MoatCreateTrap(&Ignore, &trap_options, &trap) == MOAT_RESULT_OK);
  EXPECT(MoatAddTrigger(trap, boot, kWatched, MOAT_TRIGGER_CONDITION_SIGNALS_SATISFIED, 0, NULL) ==
         MOAT_RESULT_OK);
  int fd = -1;
  EXPECT(MoatGetTrapDescriptor(trap, &fd) == MOAT_RESULT_OK);
  int pings = 0;
  for (;;) {
    uint32_t none = 0;
    if (MoatArmTrap(trap, NULL, &none, NULL) == MOAT_RESULT_OK) {
      struct pollfd p = {fd, POLLIN, 0};
      EXPECT(poll(&p, 1, 20000) == 1);
      EXPECT(MoatDispatchTrapEvents(trap, NULL, 8, NULL) == MOAT_RESULT_OK);
    }
    char buf[16];
    uint32_t n = sizeof(buf), nh = 1, nf = 1;
    MoatHandle pipe = MOAT_HANDLE_INVALID;
    int passed = -1;
    const MoatResult r = MoatReadMessage(boot, NULL, buf, &n, &pipe, &nh, &passed, &nf);
    if (r == MOAT_RESULT_SHOULD_WAIT) continue;
    if (r == MOAT_RESULT_FAILED_PRECONDITION) break; /* the broker is done with us */
    EXPECT(r == MOAT_RESULT_OK && n == 4 && memcmp(buf, "ping", 4) == 0);
    if (nh == 1) {
      EXPECT(index == 0 && nf == 1);
      EXPECT(MoatWriteMessage(pipe, "pipe-ok", 7, NULL, 0, NULL, 0, NULL) == MOAT_RESULT_OK);
      EXPECT(write(passed, "fd-ok", 5) == 5);
      close(passed);
      EXPECT(MoatClose(pipe) == MOAT_RESULT_OK);
    }
    ++pings;
    const int evil = index == kEvilChild && pings == kRounds;
    EXPECT(MoatWriteMessage(boot, evil ? "evil" : "pong", 4, NULL, 0, NULL, 0, NULL) ==
           MOAT_RESULT_OK);
  }
  if (index == kEvilChild) {
    /* Cut off: the broker said why. */
    const char* reason = NULL;
    MoatResult r = MOAT_RESULT_NOT_FOUND;
    for (int i = 0; i < 2000 && r == MOAT_RESULT_NOT_FOUND; ++i) {
      r = MoatGetBrokerLossReason(&reason);
      if (r == MOAT_RESULT_NOT_FOUND) {
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
      }
    }
    EXPECT(r == MOAT_RESULT_OK && strstr(reason, "evil is not a pong") != NULL);
  } else {
    EXPECT(pings == kRounds);
  }
  _exit(0); /* moat's IO threads still run: no static teardown */
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "child") == 0) return Child(atoi(argv[2]));
  return Broker();
}
