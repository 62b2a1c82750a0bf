/*
 * guest-udp: the workload of the QEMU test guest, the same as the engine guest's
 * (engine/guest/net.ts, engine/guest/ram.ts), so both backends run one workload:
 *   - UDP echo on port 7: every datagram goes back to its sender unchanged;
 *   - UDP sink on port 9: datagrams are read and dropped;
 *   - the guest's own sequenced stream (the engine's x-guest-udp-send), started by a line on
 *     the control serial port: "send DST PORT RATE COUNT HOST_US" is answered "ok send" (or
 *     "error ..."), then COUNT datagrams go to DST:PORT at RATE/s from port 40009, each the
 *     16-byte payload of lib/seq-payload.ts (u64 BE seq from 0, u64 BE send time in µs since
 *     the epoch on the host's clock: HOST_US is the host's time when it sent the line);
 *   - a dirtier: DIRTY_RATE pages/s, each a 16-byte store at a pseudo-random 16-byte slot of
 *     a pseudo-random page of a working set of min(32768 pages, half of RAM), every 10 ms
 *     tick doing the work of the time that passed (at most 10 ticks' worth), as the engine's
 *     VcpuModel does.
 * Each job is its own process, so the guest kernel schedules them as a guest OS would.
 *
 * The echo and the sink have two paths. The fast one is an XDP program on the NIC (--iface,
 * --ip): a datagram to IP:7 is turned around in the driver (MACs, addresses and ports
 * swapped, which leaves both checksums valid) and sent back with XDP_TX; one to IP:9 is
 * dropped there. That is what keeps 20,000 datagrams/s under TCG, where the socket path
 * (a kernel UDP stack emulated instruction by instruction) tops out near that rate. The
 * sockets on 7 and 9 take what the program passes on (IP options, fragments), and all of it
 * when the program cannot be attached (its console line says why).
 *
 * Usage: guest-udp [--dirty-rate N] [--control /dev/ttyS1] [--iface eth0 --ip 192.168.100.2]
 * It returns once every job is running (the jobs stay), so /init prints its ready marker
 * only when the guest answers.
 *
 * Built by harness/vm/guest/recipe.ts with Debian's gcc: gcc -static -O2.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define ECHO_PORT 7
#define SINK_PORT 9
#define SENDER_PORT 40009
#define BATCH 64
#define DGRAM_MAX 2048
#define PAGE 4096
#define WORKING_SET_MAX_PAGES 32768
#define DIRTY_TICK_NS 10000000L
#define SEND_TICK_NS 1000000L
/* The engine's bounds on its guest stream (UDP_SENDER_LIMITS in engine/guest/net.ts). */
#define MAX_RATE 100000
#define MAX_COUNT 100000000L
#define SOCK_BUF (4 << 20)

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "guest-udp: %s\n", line);
}

static int64_t now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void put_u64_be(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

static int udp_socket(int port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return -1;
  int one = 1, buf = SOCK_BUF;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* Capped at net.core.[rw]mem_max, which /init raises. */
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Port 7 (echo != 0) or 9: read in batches; the echo sends each batch back to its senders. */
static void serve(int fd, int echo) {
  static unsigned char bufs[BATCH][DGRAM_MAX];
  static struct sockaddr_in from[BATCH];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  for (;;) {
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
      iov[i] = (struct iovec){ bufs[i], DGRAM_MAX };
      msgs[i].msg_hdr = (struct msghdr){ .msg_name = &from[i], .msg_namelen = sizeof from[i], .msg_iov = &iov[i], .msg_iovlen = 1 };
    }
    int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      say("recvmmsg on port %d: %s", echo ? ECHO_PORT : SINK_PORT, strerror(errno));
      _exit(1);
    }
    if (!echo) continue;
    for (int i = 0; i < n; i++) iov[i].iov_len = msgs[i].msg_len;
    for (int done = 0; done < n;) {
      int m = sendmmsg(fd, msgs + done, n - done, 0);
      if (m < 0) {
        if (errno == EINTR) continue;
        break; /* a full queue drops the rest, as a busy guest would */
      }
      done += m;
    }
  }
}

/* The guest's stream: `count` datagrams at `rate`/s, paced on CLOCK_MONOTONIC in 1 ms ticks. */
static void send_stream(struct in_addr dst, int port, long rate, long count, int64_t offset_us) {
  int fd = udp_socket(SENDER_PORT);
  if (fd < 0) {
    say("sender socket on port %d: %s", SENDER_PORT, strerror(errno));
    _exit(1);
  }
  static unsigned char payloads[BATCH][16];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = dst };
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i] = (struct iovec){ payloads[i], 16 };
    msgs[i].msg_hdr = (struct msghdr){ .msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov[i], .msg_iovlen = 1 };
  }
  int64_t start = now_ns(CLOCK_MONOTONIC), last = start;
  double due = 1; /* the first datagram goes at once */
  long next = 0;
  struct timespec tick = { .tv_sec = 0, .tv_nsec = SEND_TICK_NS };
  while (next < count) {
    int64_t t = now_ns(CLOCK_MONOTONIC);
    /* Catch up at most 100 ms of backlog after a late tick (a paused VM), as the engine does. */
    double elapsed = (double)(t - last) / 1e9;
    due += (elapsed < 0.1 ? elapsed : 0.1) * (double)rate;
    last = t;
    while (due >= 1 && next < count) {
      int n = 0;
      uint64_t us = (uint64_t)(now_ns(CLOCK_REALTIME) / 1000 + offset_us);
      while (n < BATCH && due >= 1 + n && next + n < count) {
        put_u64_be(payloads[n], (uint64_t)(next + n));
        put_u64_be(payloads[n] + 8, us);
        n++;
      }
      int m = sendmmsg(fd, msgs, n, 0);
      if (m <= 0) break; /* ENOBUFS and friends: the rest stays due for the next tick */
      next += m;
      due -= m;
    }
    nanosleep(&tick, NULL);
  }
  _exit(0);
}

static uint32_t xorshift32(uint32_t *s) {
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

static void dirty(long rate) {
  struct sysinfo si;
  sysinfo(&si);
  size_t half = (size_t)si.totalram * si.mem_unit / 2 / PAGE;
  size_t pages = half < WORKING_SET_MAX_PAGES ? half : WORKING_SET_MAX_PAGES;
  if (pages < 1) pages = 1;
  unsigned char *ram = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (ram == MAP_FAILED) {
    say("dirtier: mmap of %zu pages: %s", pages, strerror(errno));
    _exit(1);
  }
  say("dirtier: %ld pages/s over %zu pages", rate, pages);
  uint32_t seed = 0x5eed, counter = 0;
  int64_t last = now_ns(CLOCK_MONOTONIC);
  double carry = 0;
  struct timespec tick = { .tv_sec = 0, .tv_nsec = DIRTY_TICK_NS };
  for (;;) {
    nanosleep(&tick, NULL);
    int64_t t = now_ns(CLOCK_MONOTONIC);
    double elapsed = (double)(t - last) / 1e9, cap = 10.0 * DIRTY_TICK_NS / 1e9;
    last = t;
    double due = (elapsed < cap ? elapsed : cap) * (double)rate + carry;
    long n = (long)due;
    carry = due - (double)n;
    for (long i = 0; i < n; i++) {
      uint32_t *p = (uint32_t *)(ram + (size_t)(xorshift32(&seed) % pages) * PAGE + (xorshift32(&seed) % (PAGE / 16)) * 16);
      p[0] = ++counter;
      p[1] = xorshift32(&seed);
      p[2] = xorshift32(&seed);
      p[3] = xorshift32(&seed) | 1;
    }
  }
}

static pid_t spawn(void (*job)(void *), void *arg) {
  pid_t pid = fork();
  if (pid == 0) {
    job(arg);
    _exit(0);
  }
  if (pid < 0) say("fork: %s", strerror(errno));
  return pid;
}

/* eBPF instructions (the kernel's include/linux/filter.h spells these macros; uapi does not). */
#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define LDX(size, d, s, o) INSN(BPF_LDX | BPF_MEM | (size), d, s, o, 0)
#define STX(size, d, s, o) INSN(BPF_STX | BPF_MEM | (size), d, s, o, 0)
#define MOV(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOVI(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ADDI(d, i) INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, i)
#define ANDI(d, i) INSN(BPF_ALU64 | BPF_AND | BPF_K, d, 0, 0, i)
#define JGT(d, s, o) INSN(BPF_JMP | BPF_JGT | BPF_X, d, s, o, 0)
/* 32-bit compares: a loaded u32 is compared with the 32-bit immediate as is, never sign-extended. */
#define JNE32(d, i, o) INSN(BPF_JMP32 | BPF_JNE | BPF_K, d, 0, o, i)
#define JEQ32(d, i, o) INSN(BPF_JMP32 | BPF_JEQ | BPF_K, d, 0, o, i)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* Little-endian host: a big-endian field loaded from the frame reads byte-swapped. */
#define LE16(v) ((int32_t)(((v) >> 8) | (((v) & 0xff) << 8)))

/*
 * The echo's fast path, for an IPv4 frame without options to `ip` (network order):
 * UDP to port 7 goes back out swapped (XDP_TX), to port 9 is dropped, anything else goes on
 * to the stack (XDP_PASS). Registers: r2 data, r3 data_end, r4-r9 scratch.
 */
static int xdp_echo(const char *iface, const char *ip) {
  struct in_addr addr;
  unsigned ifindex = if_nametoindex(iface);
  if (inet_pton(AF_INET, ip, &addr) != 1 || ifindex == 0) {
    say("xdp: bad --iface %s or --ip %s", iface, ip);
    return -1;
  }
  int32_t dst;
  memcpy(&dst, &addr.s_addr, 4);
  enum { DROP = 37, PASS = 39 }; /* jump targets: the index of each verdict's first instruction */
  struct bpf_insn prog[] = {
    /* 0 */ LDX(BPF_W, 2, 1, 0), LDX(BPF_W, 3, 1, 4),
    /* 2 */ MOV(4, 2), ADDI(4, 42), JGT(4, 3, PASS - 5),              /* eth + ip + udp headers present */
    /* 5 */ LDX(BPF_H, 5, 2, 12), JNE32(5, LE16(0x0800), PASS - 7),   /* IPv4 */
    /* 7 */ LDX(BPF_B, 5, 2, 14), JNE32(5, 0x45, PASS - 9),           /* no IP options */
    /* 9 */ LDX(BPF_B, 5, 2, 23), JNE32(5, IPPROTO_UDP, PASS - 11),
    /* 11 */ LDX(BPF_H, 5, 2, 20), ANDI(5, LE16(0x3fff)), JNE32(5, 0, PASS - 14), /* not a fragment */
    /* 14 */ LDX(BPF_W, 5, 2, 30), JNE32(5, dst, PASS - 16),          /* for us */
    /* 16 */ LDX(BPF_H, 5, 2, 36), JEQ32(5, LE16(SINK_PORT), DROP - 18), JNE32(5, LE16(ECHO_PORT), PASS - 19),
    /* 19 */ LDX(BPF_W, 6, 2, 0), LDX(BPF_H, 7, 2, 4), LDX(BPF_W, 8, 2, 6), LDX(BPF_H, 9, 2, 10),
    /* 23 */ STX(BPF_W, 2, 8, 0), STX(BPF_H, 2, 9, 4), STX(BPF_W, 2, 6, 6), STX(BPF_H, 2, 7, 10),
    /* 27 */ LDX(BPF_W, 6, 2, 26), LDX(BPF_W, 7, 2, 30), STX(BPF_W, 2, 7, 26), STX(BPF_W, 2, 6, 30),
    /* 31 */ LDX(BPF_H, 6, 2, 34), LDX(BPF_H, 7, 2, 36), STX(BPF_H, 2, 7, 34), STX(BPF_H, 2, 6, 36),
    /* 35 */ MOVI(0, XDP_TX), EXIT(),
    /* 37 */ MOVI(0, XDP_DROP), EXIT(),
    /* 39 */ MOVI(0, XDP_PASS), EXIT(),
  };
  _Static_assert(sizeof prog / sizeof prog[0] == PASS + 2, "DROP and PASS must index the last two verdicts");
  static char log[65536];
  union bpf_attr load;
  memset(&load, 0, sizeof load);
  load.prog_type = BPF_PROG_TYPE_XDP;
  load.insns = (uint64_t)(uintptr_t)prog;
  load.insn_cnt = sizeof prog / sizeof prog[0];
  load.license = (uint64_t)(uintptr_t)"GPL";
  load.log_buf = (uint64_t)(uintptr_t)log;
  load.log_size = sizeof log;
  load.log_level = 1;
  int prog_fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
  if (prog_fd < 0) {
    say("xdp: the verifier refused the echo program (%s): %.400s", strerror(errno), log);
    return -1;
  }
  union bpf_attr link;
  memset(&link, 0, sizeof link);
  link.link_create.prog_fd = (uint32_t)prog_fd;
  link.link_create.target_ifindex = ifindex;
  link.link_create.attach_type = BPF_XDP;
  int link_fd = (int)syscall(SYS_bpf, BPF_LINK_CREATE, &link, sizeof link);
  if (link_fd < 0) {
    say("xdp: attaching to %s failed (%s); the sockets echo instead", iface, strerror(errno));
    close(prog_fd);
    return -1;
  }
  /* The link lives while an fd refers to it: the echo job that inherits it keeps it. */
  return link_fd;
}

static void echo_job(void *fd) { serve(*(int *)fd, 1); }
static void sink_job(void *fd) { serve(*(int *)fd, 0); }
static void dirty_job(void *rate) { dirty(*(long *)rate); }

static void reply(int tty, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(int tty, const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  if (write(tty, line, (size_t)n) < 0) say("control reply: %s", strerror(errno));
}

/* One control line; a new `send` replaces a running stream, as x-guest-udp-send does. */
static void command(int tty, char *line, pid_t *sender) {
  char dst[64];
  long port, rate, count;
  long long host_us;
  struct in_addr addr;
  if (sscanf(line, "send %63s %ld %ld %ld %lld", dst, &port, &rate, &count, &host_us) != 5) {
    reply(tty, "error expected: send DST PORT RATE COUNT HOST_US");
    return;
  }
  if (inet_pton(AF_INET, dst, &addr) != 1 || port < 1 || port > 65535 || rate < 1 || rate > MAX_RATE
      || count < 1 || count > MAX_COUNT || host_us < 0) {
    reply(tty, "error bad send arguments (DST an IPv4 address, PORT 1-65535, RATE 1-%d, COUNT 1-%ld)", MAX_RATE, MAX_COUNT);
    return;
  }
  if (*sender > 0) {
    kill(*sender, SIGKILL);
    waitpid(*sender, NULL, 0);
  }
  int64_t offset_us = host_us - now_ns(CLOCK_REALTIME) / 1000;
  pid_t pid = fork();
  if (pid == 0) send_stream(addr, (int)port, rate, count, offset_us);
  *sender = pid;
  if (pid < 0) reply(tty, "error fork: %s", strerror(errno));
  else reply(tty, "ok send");
}

/* The control line: raw, no echo, so a command arrives as written and nothing comes back but replies. */
static void control(const char *dev) {
  int tty = open(dev, O_RDWR | O_NOCTTY);
  struct termios t;
  if (tty < 0 || tcgetattr(tty, &t) < 0) {
    say("control %s: %s (no guest stream on this VM)", dev, strerror(errno));
    _exit(1);
  }
  cfmakeraw(&t);
  t.c_cflag |= CLOCAL | CREAD;
  cfsetispeed(&t, B115200);
  cfsetospeed(&t, B115200);
  tcsetattr(tty, TCSANOW, &t);
  signal(SIGCHLD, SIG_DFL);
  pid_t sender = 0;
  char line[256];
  size_t len = 0;
  for (;;) {
    char c;
    ssize_t n = read(tty, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      /* No peer on the chardev yet: the port reads nothing; wait and read again. */
      usleep(100000);
      continue;
    }
    if (sender > 0 && waitpid(sender, NULL, WNOHANG) == sender) sender = 0;
    if (c == '\r') continue;
    if (c != '\n') {
      if (len < sizeof line - 1) line[len++] = c;
      continue;
    }
    line[len] = 0;
    len = 0;
    if (line[0]) command(tty, line, &sender);
  }
}

static void control_job(void *dev) { control((const char *)dev); }

int main(int argc, char **argv) {
  long dirty_rate = 0;
  const char *control_dev = NULL, *iface = NULL, *ip = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--dirty-rate") && i + 1 < argc) dirty_rate = strtol(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--control") && i + 1 < argc) control_dev = argv[++i];
    else if (!strcmp(argv[i], "--iface") && i + 1 < argc) iface = argv[++i];
    else if (!strcmp(argv[i], "--ip") && i + 1 < argc) ip = argv[++i];
    else {
      fprintf(stderr, "usage: guest-udp [--dirty-rate PAGES_PER_S] [--control TTY] [--iface IFACE --ip ADDR]\n");
      return 2;
    }
  }
  int xdp = iface && ip ? xdp_echo(iface, ip) : -1;
  int echo_fd = udp_socket(ECHO_PORT), sink_fd = udp_socket(SINK_PORT);
  if (echo_fd < 0 || sink_fd < 0) {
    say("binding UDP ports %d and %d: %s", ECHO_PORT, SINK_PORT, strerror(errno));
    return 1;
  }
  if (spawn(echo_job, &echo_fd) < 0 || spawn(sink_job, &sink_fd) < 0) return 1;
  if (dirty_rate > 0 && spawn(dirty_job, &dirty_rate) < 0) return 1;
  if (control_dev && spawn(control_job, (void *)control_dev) < 0) return 1;
  if (xdp >= 0) close(xdp); /* the echo job holds its copy */
  say("echo :%d, sink :%d (%s), dirty %ld pages/s, control %s", ECHO_PORT, SINK_PORT,
      xdp >= 0 ? "XDP on the NIC" : "sockets", dirty_rate, control_dev ? control_dev : "none");
  return 0;
}
