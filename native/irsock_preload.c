/*
 * irsock_preload.c -- AF_IRDA sockets for unmodified Linux programs, on top of the irsock daemon.
 *
 * Linux removed its IrDA stack in 4.17, so socket(AF_IRDA, ...) fails with EAFNOSUPPORT and programs such as
 * obexftp, ircp, irxfer, obexftpd and gammu cannot reach infrared devices any more. Loaded with LD_PRELOAD (by
 * `irda run PROGRAM`), this library answers socket(AF_IRDA=23, ...) with a real AF_UNIX SOCK_STREAM socket
 * connected to the irsock daemon (`irda serve`, the path in $IRSOCK_SOCKET), and turns the control calls on it
 * (bind, connect, listen, accept, getsockopt/setsockopt at SOL_IRLMP, getsockname, getpeername) into the
 * daemon's requests (docs/daemon.md, protocol version 1). Once connected, the descriptor carries the socket's
 * bytes itself, so read/write/send/recv/poll/select/epoll need no help. Every other call, and every call on
 * another descriptor, goes straight to the next definition (dlsym RTLD_NEXT): a program that never creates an
 * AF_IRDA socket behaves exactly as without the library.
 *
 * The structures and option numbers are those of Linux's <linux/irda.h> (the uapi header that left the kernel
 * with the stack); the behaviour and the errno values follow Linux's af_irda.c, written here from its documented
 * behaviour (docs/native.md has the table).
 *
 * Threads: the descriptor table is guarded by one mutex; each AF_IRDA socket has its own mutex so that one
 * request and its answer never interleave with another thread's; the session's anchor connection has one too.
 * No lock is held while waiting for the daemon except the one of the connection being used.
 *
 * Copyright (c) irsock contributors. MIT licence (see pyproject.toml).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define IR_AF_IRDA 23
#define IR_SOL_IRLMP 266
#define IR_ENUMDEVICES 1
#define IR_IAS_SET 2
#define IR_IAS_QUERY 3
#define IR_HINTS_SET 4
#define IR_QOS_SET 5
#define IR_QOS_GET 6
#define IR_MAX_SDU_SIZE 7
#define IR_IAS_GET 8
#define IR_IAS_DEL 9
#define IR_HINT_MASK_SET 10
#define IR_WAITDEVICE 11
#define IR_IAS_MISSING 0
#define IR_IAS_INTEGER 1
#define IR_IAS_OCT_SEQ 2
#define IR_IAS_STRING 3
#define IR_LSAP_ANY 0xff
#define IR_LSAP_MAX 0x6f      /* the highest LSAP a socket can bind; 0x70 and up are connectionless/reserved */
#define IR_DEV_ADDR_ANY 0xffffffffu
#define IR_MAX_DISCOVERIES 2048 /* Linux refuses a longer discovery log with EINVAL */

/* The user-visible layouts of <linux/irda.h> (the same sizes and offsets on every Linux ABI). */
struct ir_sockaddr {
    sa_family_t sir_family;
    uint8_t sir_lsap_sel;
    uint32_t sir_addr;
    char sir_name[25];
};

struct ir_device_info {
    uint32_t saddr;
    uint32_t daddr;
    char info[22];
    uint8_t charset;
    uint8_t hints[2];
};

struct ir_device_list {
    uint32_t len;
    struct ir_device_info dev[1];
};

struct ir_ias_set {
    char class_name[64];
    char attrib_name[256];
    unsigned int attrib_type;
    union {
        unsigned int integer;
        struct {
            unsigned short len;
            uint8_t octets[1024];
        } octet_seq;
        struct {
            uint8_t len;
            uint8_t charset;
            uint8_t string[256];
        } string;
    } attribute;
    uint32_t daddr;
};

_Static_assert(sizeof(struct ir_sockaddr) == 36, "struct sockaddr_irda is 36 bytes");
_Static_assert(sizeof(struct ir_device_info) == 36, "struct irda_device_info is 36 bytes");
_Static_assert(offsetof(struct ir_device_list, dev) == 4, "the device list starts after its count");
_Static_assert(sizeof(struct ir_ias_set) == 1356, "struct irda_ias_set is 1356 bytes");

#define LINE_MAX_BYTES 4096 /* the protocol's longest line, newline included */
#define MAX_FIELDS 256

/* --- the next definitions of what we wrap --------------------------------------------------------------- */
static int (*real_socket)(int, int, int);
static int (*real_bind)(int, const struct sockaddr *, socklen_t);
static int (*real_connect)(int, const struct sockaddr *, socklen_t);
static int (*real_listen)(int, int);
static int (*real_accept)(int, struct sockaddr *, socklen_t *);
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
static int (*real_getsockopt)(int, int, int, void *, socklen_t *);
static int (*real_setsockopt)(int, int, int, const void *, socklen_t);
static int (*real_getsockname)(int, struct sockaddr *, socklen_t *);
static int (*real_getpeername)(int, struct sockaddr *, socklen_t *);
static int (*real_shutdown)(int, int);
static int (*real_close)(int);
static int (*real_fcntl)(int, int, ...);
static int (*real_fcntl64)(int, int, ...);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);

static pthread_once_t resolved = PTHREAD_ONCE_INIT;
static int debug; /* IRSOCK_DEBUG set: every request and answer on stderr */

static void child_after_fork(void);

static void resolve(void)
{
    real_socket = dlsym(RTLD_NEXT, "socket");
    real_bind = dlsym(RTLD_NEXT, "bind");
    real_connect = dlsym(RTLD_NEXT, "connect");
    real_listen = dlsym(RTLD_NEXT, "listen");
    real_accept = dlsym(RTLD_NEXT, "accept");
    real_accept4 = dlsym(RTLD_NEXT, "accept4");
    real_getsockopt = dlsym(RTLD_NEXT, "getsockopt");
    real_setsockopt = dlsym(RTLD_NEXT, "setsockopt");
    real_getsockname = dlsym(RTLD_NEXT, "getsockname");
    real_getpeername = dlsym(RTLD_NEXT, "getpeername");
    real_shutdown = dlsym(RTLD_NEXT, "shutdown");
    real_close = dlsym(RTLD_NEXT, "close");
    real_fcntl = dlsym(RTLD_NEXT, "fcntl");
    real_fcntl64 = dlsym(RTLD_NEXT, "fcntl64");
    if (!real_fcntl64)
        real_fcntl64 = real_fcntl; /* a libc without the 64-bit name: they are one function */
    real_dup = dlsym(RTLD_NEXT, "dup");
    real_dup2 = dlsym(RTLD_NEXT, "dup2");
    real_dup3 = dlsym(RTLD_NEXT, "dup3");
    const char *d = getenv("IRSOCK_DEBUG");
    debug = d && *d && strcmp(d, "0") != 0;
    pthread_atfork(NULL, NULL, child_after_fork);
}

/* Every wrapper starts here: the first call may come from another library's constructor, before ours. */
static inline void init(void)
{
    pthread_once(&resolved, resolve);
}

__attribute__((constructor)) static void preload_loaded(void)
{
    init();
}

static void trace(const char *what, const char *line)
{
    if (debug) {
        size_t n = strlen(line);
        fprintf(stderr, "irsock[%d]: %s %.*s\n", (int)getpid(), what, (int)(n && line[n - 1] == '\n' ? n - 1 : n),
                line);
    }
}

/* --- the descriptor table --------------------------------------------------------------------------------- */
enum { ST_MESSAGE, ST_LISTEN, ST_DATA };

struct irsock {
    int refs;        /* descriptors (dup) and calls in progress that use it; freed at 0 */
    int type;        /* SOCK_STREAM, SOCK_SEQPACKET or SOCK_DGRAM */
    int protocol;
    int state;       /* ST_MESSAGE until listen (ST_LISTEN) or connect/accept (ST_DATA) */
    unsigned long sid; /* the daemon's number for the socket */
    int bound;       /* 0 no, 1 recorded locally (no name, any LSAP), 2 bound in the daemon */
    char bound_name[26];
    unsigned local_lsap;
    uint32_t peer_addr;
    unsigned peer_lsap;
    pthread_mutex_t io; /* one request/answer at a time on this socket's connection */
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct irsock **table;
static int table_size;
static int live; /* table entries in use: 0 lets every wrapper pass straight through without a lock */

static struct irsock *hold(int fd)
{
    if (fd < 0 || !__atomic_load_n(&live, __ATOMIC_ACQUIRE))
        return NULL;
    struct irsock *s = NULL;
    pthread_mutex_lock(&table_lock);
    if (fd < table_size && table[fd]) {
        s = table[fd];
        s->refs++;
    }
    pthread_mutex_unlock(&table_lock);
    return s;
}

static void release_locked(struct irsock *s)
{
    if (--s->refs == 0) {
        pthread_mutex_destroy(&s->io);
        free(s);
    }
}

static void release(struct irsock *s)
{
    pthread_mutex_lock(&table_lock);
    release_locked(s);
    pthread_mutex_unlock(&table_lock);
}

/* Drop fd's entry (the program closed it or another descriptor replaced it). */
static void forget(int fd)
{
    if (fd < 0 || !__atomic_load_n(&live, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&table_lock);
    if (fd < table_size && table[fd]) {
        release_locked(table[fd]);
        table[fd] = NULL;
        __atomic_sub_fetch(&live, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&table_lock);
}

/* fd now refers to s too (a new socket, an accepted one, a dup). 0, or -1 with errno ENOMEM. */
static int remember(int fd, struct irsock *s)
{
    int rc = 0;
    pthread_mutex_lock(&table_lock);
    if (fd >= table_size) {
        int size = table_size ? table_size : 64;
        while (size <= fd)
            size *= 2;
        struct irsock **grown = realloc(table, (size_t)size * sizeof *grown);
        if (!grown) {
            rc = -1;
            goto out;
        }
        memset(grown + table_size, 0, (size_t)(size - table_size) * sizeof *grown);
        table = grown;
        table_size = size;
    }
    if (table[fd]) { /* a stale entry: the descriptor was closed behind our back (close_range, a raw syscall) */
        release_locked(table[fd]);
        __atomic_sub_fetch(&live, 1, __ATOMIC_RELEASE);
    }
    s->refs++;
    table[fd] = s;
    __atomic_add_fetch(&live, 1, __ATOMIC_RELEASE);
out:
    pthread_mutex_unlock(&table_lock);
    if (rc)
        errno = ENOMEM;
    return rc;
}

static struct irsock *new_irsock(int type, int protocol)
{
    struct irsock *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->refs = 1; /* the creator's, given back with release() once the table holds it */
    s->type = type;
    s->protocol = protocol;
    s->state = ST_MESSAGE;
    pthread_mutex_init(&s->io, NULL);
    return s;
}

/* --- percent-encoding and fields ---------------------------------------------------------------------------- */
static int plain_byte(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == ':' || c == '~' || c == '/';
}

/* The protocol's form of the n bytes at text (every other byte %XX, the empty string "%") into out. */
static void encode(char *out, size_t cap, const void *text, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = text;
    size_t o = 0;
    if (n == 0) {
        snprintf(out, cap, "%%");
        return;
    }
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        if (plain_byte(p[i])) {
            out[o++] = (char)p[i];
        } else {
            out[o++] = '%';
            out[o++] = hex[p[i] >> 4];
            out[o++] = hex[p[i] & 15];
        }
    }
    out[o] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes a field into at most cap bytes at out; the number of bytes, or -1 for a malformed field. */
static long decode(const char *field, unsigned char *out, size_t cap)
{
    size_t n = 0;
    if (strcmp(field, "%") == 0)
        return 0;
    for (const char *p = field; *p; p++) {
        int c = (unsigned char)*p;
        if (*p == '%') {
            int hi = hex_value(p[1]), lo = hi < 0 ? -1 : hex_value(p[2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi << 4 | lo;
            p += 2;
        }
        if (n < cap)
            out[n] = (unsigned char)c;
        n++;
    }
    return (long)(n < cap ? n : cap);
}

static int parse_ulong(const char *text, int base, unsigned long *out)
{
    char *end;
    if (!text || !*text)
        return -1;
    errno = 0;
    unsigned long v = strtoul(text, &end, base);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_u32(const char *text, uint32_t *out)
{
    unsigned long v;
    if (parse_ulong(text, 0, &v) || v > 0xffffffffUL)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* "LSAP-SELn" -> n; -1 for anything else. */
static int lsap_of(const char *name)
{
    unsigned long v;
    if (strncmp(name, "LSAP-SEL", 8) != 0 || parse_ulong(name + 8, 10, &v) || v > 0xff)
        return -1;
    return (int)v;
}

/* --- talking to the daemon ------------------------------------------------------------------------------------- */
struct answer {
    char line[LINE_MAX_BYTES + 1];
    char *field[MAX_FIELDS]; /* after "ok": its fields */
    int n;
    int err;                 /* the errno of an "err" answer, or of a failed exchange */
    char text[LINE_MAX_BYTES + 1];
};

/* Waits until fd is ready for `events` (EINTR does not end the wait: a request half answered cannot be left). */
static int wait_for(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int r = poll(&p, 1, -1);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

static int send_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            buf += w;
            len -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_for(fd, POLLOUT);
            if (rc)
                return rc;
        } else {
            return -ENETDOWN; /* EPIPE, ECONNRESET: the daemon went away */
        }
    }
    return 0;
}

/*
 * Reads one line (without its newline) byte by byte: what follows it on the connection -- the socket's data after
 * connect's or take's "ok", the next "incoming" line of a listener -- must stay in the kernel's buffer, where the
 * program's read and select find it.
 */
static int read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    int too_long = 0;
    for (;;) {
        char c;
        ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
        if (r == 1) {
            if (c == '\n')
                break;
            if (n + 1 < cap)
                buf[n++] = c;
            else
                too_long = 1;
        } else if (r == 0) {
            return -ENETDOWN;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_for(fd, POLLIN);
            if (rc)
                return rc;
        } else {
            return -ENETDOWN;
        }
    }
    buf[n] = '\0';
    return too_long ? -EPROTO : 0;
}

/* Splits an answer line; a->err is 0 for "ok", the errno of "err", EPROTO for anything else. */
static void parse_answer(struct answer *a)
{
    char *fields[MAX_FIELDS + 2];
    int n = 0;
    char *save = NULL;
    for (char *f = strtok_r(a->line, " ", &save); f && n < MAX_FIELDS + 2; f = strtok_r(NULL, " ", &save))
        fields[n++] = f;
    a->n = 0;
    a->text[0] = '\0';
    if (n >= 1 && strcmp(fields[0], "ok") == 0) {
        a->err = 0;
        for (int i = 1; i < n && i <= MAX_FIELDS; i++)
            a->field[a->n++] = fields[i];
    } else if (n >= 2 && strcmp(fields[0], "err") == 0) {
        unsigned long e;
        a->err = parse_ulong(fields[1], 10, &e) == 0 && e > 0 && e < 4096 ? (int)e : EIO;
        /* "err ERRNO TEXT LINUX_ERRNO": where Linux's af_irda said something else than the Python layer (IAS
         * "no such class or attribute" is EADDRNOTAVAIL there, ECONNREFUSED as Windows says it) */
        if (n >= 4 && parse_ulong(fields[3], 10, &e) == 0 && e > 0 && e < 4096)
            a->err = (int)e;
        if (n >= 3) {
            long len = decode(fields[2], (unsigned char *)a->text, sizeof a->text - 1);
            a->text[len > 0 ? len : 0] = '\0';
        }
    } else {
        a->err = EPROTO;
    }
}

/* One request and its answer on fd. 0 for "ok", else the errno (a->err holds it too). */
static int exchange(int fd, const char *request, struct answer *a)
{
    trace(">", request);
    int rc = send_all(fd, request, strlen(request));
    if (!rc)
        rc = read_line(fd, a->line, sizeof a->line);
    if (rc) {
        a->err = -rc;
        a->n = 0;
        snprintf(a->text, sizeof a->text, "%s", rc == -ENETDOWN ? "the irsock daemon went away" : "bad answer");
        trace("!", a->text);
        return a->err;
    }
    trace("<", a->line);
    parse_answer(a);
    return a->err;
}

static const char *daemon_path(void)
{
    const char *path = getenv("IRSOCK_SOCKET");
    return path && *path ? path : NULL;
}

/* A new connection to the daemon, close-on-exec when asked; -errno when there is none to reach. */
static int daemon_open(int cloexec)
{
    static int told;
    const char *path = daemon_path();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path)
        return -EAFNOSUPPORT;
    if (strlen(path) >= sizeof sa.sun_path) {
        if (!__atomic_exchange_n(&told, 1, __ATOMIC_RELAXED))
            fprintf(stderr, "irsock: IRSOCK_SOCKET is too long for a Unix socket path: %s\n", path);
        return -EAFNOSUPPORT;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = real_socket(AF_UNIX, SOCK_STREAM | (cloexec ? SOCK_CLOEXEC : 0), 0);
    if (fd < 0)
        return -errno;
    while (real_connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        real_close(fd);
        if (!__atomic_exchange_n(&told, 1, __ATOMIC_RELAXED))
            fprintf(stderr, "irsock: no irsock daemon at %s (%s): start one with `irda serve --port PORT`\n", path,
                    strerror(e));
        return -EAFNOSUPPORT; /* what the program saw before: this family has no stack here */
    }
    return fd;
}

/* --- the session's anchor connection ------------------------------------------------------------------------- */
/*
 * One connection per process opens the session and stays open until the process ends: every AF_IRDA socket's
 * connection joins that session, and the session (on the built-in emulator: our station, its address and its
 * discovery log) outlives the short-lived sockets OpenOBEX makes for discovery and IAS queries. It also carries
 * the requests about sockets whose own connection cannot: in data mode, or listening.
 */
static pthread_mutex_t anchor_lock = PTHREAD_MUTEX_INITIALIZER;
static int anchor_fd = -1;
static dev_t anchor_dev;
static ino_t anchor_ino;
static char session[128];
static uint32_t station; /* our station's address, from the hello answers; any thread may learn it */
static pthread_mutex_t station_lock = PTHREAD_MUTEX_INITIALIZER;

static void set_station(uint32_t address)
{
    if (!address)
        return;
    pthread_mutex_lock(&station_lock);
    station = address;
    pthread_mutex_unlock(&station_lock);
}

static uint32_t get_station(void)
{
    pthread_mutex_lock(&station_lock);
    uint32_t address = station;
    pthread_mutex_unlock(&station_lock);
    return address;
}

static void child_after_fork(void)
{
    /* The child must not talk on the parent's anchor (their requests would interleave): it drops its copy and
     * joins the same session with a connection of its own when it needs one. */
    pthread_mutex_init(&anchor_lock, NULL);
    pthread_mutex_init(&table_lock, NULL);
    pthread_mutex_init(&station_lock, NULL);
    if (anchor_fd >= 0)
        real_close(anchor_fd);
    anchor_fd = -1;
}

/* "hello" on a new connection, joining the session (or opening it when there is none yet). Only the anchor's
 * hello (under anchor_lock) writes the session's token; the others join it and must get the same one back. */
static int hello(int fd, int join)
{
    char request[256];
    struct answer a;
    if (join && session[0])
        snprintf(request, sizeof request, "hello 1 %d %s\n", (int)getpid(), session);
    else
        snprintf(request, sizeof request, "hello 1 %d\n", (int)getpid());
    int rc = exchange(fd, request, &a);
    if (rc)
        return rc;
    uint32_t address;
    if (a.n < 4 || strcmp(a.field[0], "1") != 0 || strlen(a.field[3]) >= sizeof session)
        return EPROTO;
    if (parse_u32(a.field[1], &address) == 0)
        set_station(address);
    if (!join || !session[0])
        snprintf(session, sizeof session, "%s", a.field[3]);
    else if (strcmp(session, a.field[3]) != 0)
        return EPROTO;
    return 0;
}

/* Moves our own descriptor out of the low numbers the program expects to get (the first AF_IRDA socket is fd 3,
 * as it would be with a kernel stack). */
static int out_of_the_way(int fd)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) || lim.rlim_cur < 256)
        return fd;
    long base = lim.rlim_cur > 1000 ? 960 : (long)lim.rlim_cur - 32;
    int high = real_fcntl(fd, F_DUPFD_CLOEXEC, (int)base);
    if (high < 0)
        return fd;
    real_close(fd);
    return high;
}

/* Opens the anchor if needed; call with anchor_lock held. 0 or the errno. */
static int anchor_ready(void)
{
    struct stat st;
    if (anchor_fd >= 0 && fstat(anchor_fd, &st) == 0 && st.st_dev == anchor_dev && st.st_ino == anchor_ino)
        return 0;
    anchor_fd = -1; /* closed behind our back (close_range, a close loop): a new one joins the session */
    int fd = daemon_open(1);
    if (fd < 0)
        return -fd;
    fd = out_of_the_way(fd);
    int rc = hello(fd, 1);
    if (rc && session[0]) { /* the session ended meanwhile (a fork's child whose parent is gone): a new one */
        real_close(fd);
        session[0] = '\0';
        fd = daemon_open(1);
        if (fd < 0)
            return -fd;
        fd = out_of_the_way(fd);
        rc = hello(fd, 0);
    }
    if (rc || fstat(fd, &st)) {
        real_close(fd);
        return rc ? rc : errno;
    }
    anchor_fd = fd;
    anchor_dev = st.st_dev;
    anchor_ino = st.st_ino;
    return 0;
}

static int anchor_exchange(const char *request, struct answer *a)
{
    pthread_mutex_lock(&anchor_lock);
    int rc = anchor_ready();
    if (rc) {
        a->err = rc;
        a->n = 0;
        a->text[0] = '\0';
    } else {
        rc = exchange(anchor_fd, request, a);
        if (rc == ENETDOWN && anchor_fd >= 0) { /* the daemon went away: the next call tries a new anchor */
            real_close(anchor_fd);
            anchor_fd = -1;
        }
    }
    pthread_mutex_unlock(&anchor_lock);
    return rc;
}

/*
 * A request about socket s: on its own connection (SID 0) while that carries messages, else on the anchor with
 * the socket's SID (a data-mode connection carries only data; a listener's must keep only "incoming" lines).
 * `rest` follows "VERB SID". The caller holds s->io.
 */
static int socket_request(int fd, struct irsock *s, const char *verb, const char *rest, struct answer *a)
{
    char request[LINE_MAX_BYTES + 64];
    const char *sep = rest && *rest ? " " : "";
    if (s->state == ST_MESSAGE) {
        snprintf(request, sizeof request, "%s 0%s%s\n", verb, sep, rest ? rest : "");
        return exchange(fd, request, a);
    }
    snprintf(request, sizeof request, "%s %lu%s%s\n", verb, s->sid, sep, rest ? rest : "");
    return anchor_exchange(request, a);
}

static int fail(int e)
{
    errno = e;
    return -1;
}

static int is_nonblocking(int fd)
{
    int flags = real_fcntl(fd, F_GETFL);
    return flags >= 0 && (flags & O_NONBLOCK);
}

/* A new connection of the session that has said hello; nonblocking after the handshake when asked. */
static int session_connection(int flags)
{
    pthread_mutex_lock(&anchor_lock);
    int rc = anchor_ready(); /* the session first: this connection joins it */
    pthread_mutex_unlock(&anchor_lock);
    if (rc)
        return -rc;
    int fd = daemon_open(flags & SOCK_CLOEXEC);
    if (fd < 0)
        return fd;
    rc = hello(fd, 1);
    if (rc) {
        real_close(fd);
        return -rc;
    }
    return fd;
}

static void set_nonblocking(int fd)
{
    int fl = real_fcntl(fd, F_GETFL);
    if (fl >= 0)
        real_fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* --- socket ---------------------------------------------------------------------------------------------------- */
static int irda_socket(int type, int protocol)
{
    int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    const char *kind;
    switch (base) {
    case SOCK_STREAM:
        kind = "stream";
        break;
    case SOCK_SEQPACKET:
        kind = "seqpacket";
        break;
    case SOCK_DGRAM:
        if (protocol != 0) /* 1 is IRDAPROTO_ULTRA (connectionless IrLMP): the daemon has no Ultra sockets */
            return fail(ESOCKTNOSUPPORT);
        kind = "dgram";
        break;
    default:
        return fail(ESOCKTNOSUPPORT);
    }
    if (!daemon_path())
        return fail(EAFNOSUPPORT); /* not run by `irda run`: exactly what the kernel says */

    int fd = session_connection(flags);
    if (fd < 0)
        return fail(-fd);
    char request[64];
    struct answer a;
    snprintf(request, sizeof request, "socket %s\n", kind);
    int rc = exchange(fd, request, &a);
    unsigned long sid;
    if (!rc && (a.n < 1 || parse_ulong(a.field[0], 10, &sid)))
        rc = EPROTO;
    struct irsock *s = rc ? NULL : new_irsock(base, protocol);
    if (!rc && !s)
        rc = ENOMEM;
    if (!rc) {
        s->sid = sid;
        if (remember(fd, s))
            rc = ENOMEM;
        release(s); /* the table holds it now (or nothing does) */
    }
    if (rc) {
        real_close(fd);
        return fail(rc);
    }
    if (flags & SOCK_NONBLOCK)
        set_nonblocking(fd);
    return fd;
}

int socket(int domain, int type, int protocol)
{
    init();
    if (domain != IR_AF_IRDA)
        return real_socket(domain, type, protocol);
    return irda_socket(type, protocol);
}

/* --- bind, listen, connect, accept ---------------------------------------------------------------------------- */
static void name_of(const struct ir_sockaddr *sa, char *out /* 26 */)
{
    size_t n = strnlen(sa->sir_name, sizeof sa->sir_name);
    memcpy(out, sa->sir_name, n);
    out[n] = '\0';
}

/* "bind NAME" on the socket's connection; name "" asks for any free LSAP and no IAS entry. */
static int bind_request(int fd, struct irsock *s, const char *name, unsigned lsap)
{
    char encoded[80], request[96];
    struct answer a;
    if (name[0] || lsap == IR_LSAP_ANY) {
        encode(encoded, sizeof encoded, name, strlen(name));
        snprintf(request, sizeof request, "bind %s\n", encoded);
    } else {
        snprintf(request, sizeof request, "bind LSAP-SEL%u\n", lsap);
    }
    if (exchange(fd, request, &a))
        return a.err;
    unsigned long got = 0;
    if (a.n >= 1)
        parse_ulong(a.field[0], 0, &got);
    s->local_lsap = (unsigned)got;
    s->bound = 2;
    snprintf(s->bound_name, sizeof s->bound_name, "%s", name);
    return 0;
}

static int irda_bind(int fd, struct irsock *s, const struct sockaddr *addr, socklen_t len)
{
    struct ir_sockaddr sa;
    char name[26];
    if (len != sizeof sa)
        return fail(EINVAL);
    if (!addr)
        return fail(EFAULT);
    memcpy(&sa, addr, sizeof sa);
    if (s->state != ST_MESSAGE || s->bound)
        return fail(EBUSY); /* Linux: the socket's TinyTP endpoint exists already */
    name_of(&sa, name);
    if (!name[0] && (sa.sir_lsap_sel == 0 || sa.sir_lsap_sel == IR_LSAP_ANY)) {
        /* No name and no particular LSAP. OpenOBEX binds so before connect (obexftp, ircp) and before listen
         * (obexftpd -i: service ""). Linux gave the socket a free LSAP and the IAS class "", which no peer asks
         * for. Nothing is registered now: connect takes a free LSAP anyway, and listen binds then (see there). */
        s->bound = 1;
        return 0;
    }
    if (!name[0] && sa.sir_lsap_sel > IR_LSAP_MAX)
        return fail(EINVAL); /* 0x70-0xfe: connectionless and reserved selectors */
    int rc = bind_request(fd, s, name, sa.sir_lsap_sel);
    return rc ? fail(rc) : 0;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    init();
    struct irsock *s = hold(fd);
    if (!s)
        return real_bind(fd, addr, len);
    pthread_mutex_lock(&s->io);
    int rc = irda_bind(fd, s, addr, len);
    int e = errno;
    pthread_mutex_unlock(&s->io);
    release(s);
    errno = e;
    return rc;
}

static int irda_listen(int fd, struct irsock *s, int backlog)
{
    char request[64];
    struct answer a;
    if (s->state == ST_LISTEN)
        return 0;
    if (s->state == ST_DATA)
        return fail(EINVAL);
    if (s->bound == 1) {
        /* Bound with no name (obexftpd -i): a free LSAP without an IAS entry, as Linux did in effect; `irda run
         * --unnamed-service NAME` registers it as NAME instead, so that peers asking IAS for NAME (OBEX) find it. */
        const char *unnamed = getenv("IRSOCK_UNNAMED_SERVICE");
        char name[26];
        snprintf(name, sizeof name, "%s", unnamed ? unnamed : "");
        int rc = bind_request(fd, s, name, IR_LSAP_ANY);
        if (rc)
            return fail(rc);
    }
    snprintf(request, sizeof request, "listen %d\n", backlog > 0 ? backlog : 1);
    if (exchange(fd, request, &a))
        return fail(a.err);
    s->state = ST_LISTEN;
    return 0;
}

int listen(int fd, int backlog)
{
    init();
    struct irsock *s = hold(fd);
    if (!s)
        return real_listen(fd, backlog);
    pthread_mutex_lock(&s->io);
    int rc = irda_listen(fd, s, backlog);
    int e = errno;
    pthread_mutex_unlock(&s->io);
    release(s);
    errno = e;
    return rc;
}

static int irda_connect(int fd, struct irsock *s, const struct sockaddr *addr, socklen_t len)
{
    struct ir_sockaddr sa;
    char name[26], service[96], request[160];
    struct answer a;
    if (s->state == ST_DATA)
        return fail(EISCONN);
    if (s->state == ST_LISTEN)
        return fail(EINVAL);
    if (len != sizeof sa)
        return fail(EINVAL);
    if (!addr)
        return fail(EFAULT);
    memcpy(&sa, addr, sizeof sa);
    name_of(&sa, name);
    uint32_t device = sa.sir_addr == IR_DEV_ADDR_ANY ? 0 : sa.sir_addr;
    if (device == 0 || name[0] || sa.sir_lsap_sel > IR_LSAP_MAX) /* by name: IAS (auto-connect always is) */
        encode(service, sizeof service, name, strlen(name));
    else
        snprintf(service, sizeof service, "LSAP-SEL%u", (unsigned)sa.sir_lsap_sel);
    snprintf(request, sizeof request, "connect 0x%08x %s\n", (unsigned)device, service);
    /* Even on a non-blocking descriptor the answer is awaited: the daemon must not see data before its "ok". */
    if (exchange(fd, request, &a))
        return fail(a.err);
    uint32_t peer = device;
    unsigned long lsap = 0;
    if (a.n >= 2) {
        parse_u32(a.field[0], &peer);
        parse_ulong(a.field[1], 0, &lsap);
    }
    s->peer_addr = peer;
    s->peer_lsap = (unsigned)lsap;
    s->state = ST_DATA;
    return 0;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    init();
    struct irsock *s = hold(fd);
    if (!s)
        return real_connect(fd, addr, len);
    pthread_mutex_lock(&s->io);
    int rc = irda_connect(fd, s, addr, len);
    int e = errno;
    pthread_mutex_unlock(&s->io);
    release(s);
    errno = e;
    return rc;
}

static void put_address(struct sockaddr *addr, socklen_t *len, uint32_t device, unsigned lsap)
{
    struct ir_sockaddr sa;
    if (!addr || !len)
        return;
    memset(&sa, 0, sizeof sa);
    sa.sir_family = IR_AF_IRDA;
    sa.sir_lsap_sel = (uint8_t)lsap;
    sa.sir_addr = device;
    memcpy(addr, &sa, *len < sizeof sa ? *len : sizeof sa);
    *len = sizeof sa;
}

static int irda_accept(int fd, struct irsock *s, struct sockaddr *addr, socklen_t *len, int flags)
{
    char line[LINE_MAX_BYTES + 1], request[160];
    struct answer a;
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
        return fail(EINVAL);
    if (s->state != ST_LISTEN)
        return fail(EINVAL);
    if (addr && !len)
        return fail(EFAULT);
    if (is_nonblocking(fd)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) == 0)
            return fail(EAGAIN);
    }
    /* "incoming PENDING DEVICE LSAP": one line, the next ones stay for the next accept (and select); take's
     * answer names the peer again */
    int rc = read_line(fd, line, sizeof line);
    if (rc)
        return fail(-rc);
    trace("<", line);
    char *save = NULL, *word = strtok_r(line, " ", &save);
    char *pending = strtok_r(NULL, " ", &save);
    if (!word || strcmp(word, "incoming") != 0 || !pending) {
        if (word && strcmp(word, "err") == 0 && pending) { /* the listener ended (the daemon says why) */
            unsigned long e;
            return fail(parse_ulong(pending, 10, &e) == 0 && e > 0 && e < 4096 ? (int)e : EIO);
        }
        return fail(EPROTO);
    }
    int conn = session_connection(flags);
    if (conn < 0)
        return fail(-conn);
    snprintf(request, sizeof request, "take %s\n", pending);
    unsigned long sid = 0, peer_lsap = 0;
    uint32_t peer = 0;
    rc = exchange(conn, request, &a);
    if (!rc && (a.n < 3 || parse_ulong(a.field[0], 10, &sid) || parse_u32(a.field[1], &peer) ||
                parse_ulong(a.field[2], 0, &peer_lsap)))
        rc = EPROTO;
    if (rc) { /* the peer gave up meanwhile */
        real_close(conn);
        return fail(rc);
    }
    struct irsock *n = new_irsock(s->type, s->protocol);
    if (!n || remember(conn, n)) {
        if (n)
            release(n);
        real_close(conn);
        return fail(ENOMEM);
    }
    n->sid = sid;
    n->state = ST_DATA;
    n->peer_addr = peer;
    n->peer_lsap = (unsigned)peer_lsap;
    n->local_lsap = s->local_lsap;
    release(n);
    if (flags & SOCK_NONBLOCK)
        set_nonblocking(conn);
    put_address(addr, len, peer, (unsigned)peer_lsap);
    return conn;
}

static int accept_common(int fd, struct sockaddr *addr, socklen_t *len, int flags, int four)
{
    struct irsock *s = hold(fd);
    if (!s)
        return four ? real_accept4(fd, addr, len, flags) : real_accept(fd, addr, len);
    pthread_mutex_lock(&s->io);
    int rc = irda_accept(fd, s, addr, len, flags);
    int e = errno;
    pthread_mutex_unlock(&s->io);
    release(s);
    errno = e;
    return rc;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    init();
    return accept_common(fd, addr, len, 0, 0);
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    init();
    return accept_common(fd, addr, len, flags, 1);
}

/* --- options ------------------------------------------------------------------------------------------------------ */
/* The class an IAS option names; an empty one is the socket's own (its bind name), as on Linux. */
static int ias_class(struct irsock *s, const struct ir_ias_set *ias, char *out, size_t cap)
{
    size_t n = strnlen(ias->class_name, sizeof ias->class_name);
    if (n) {
        encode(out, cap, ias->class_name, n);
        return 0;
    }
    if (s->bound != 2 || !s->bound_name[0])
        return EINVAL;
    encode(out, cap, s->bound_name, strlen(s->bound_name));
    return 0;
}

static void ias_attribute(const struct ir_ias_set *ias, char *out, size_t cap)
{
    encode(out, cap, ias->attrib_name, strnlen(ias->attrib_name, sizeof ias->attrib_name));
}

/* "int N" / "octets HEX" / "string CHARSET TEXT" (fields from `first` on) into ias's type and value. */
static int ias_value(const struct answer *a, int first, struct ir_ias_set *ias)
{
    if (a->n < first + 2)
        return EPROTO;
    const char *kind = a->field[first], *v = a->field[first + 1];
    memset(&ias->attribute, 0, sizeof ias->attribute);
    if (strcmp(kind, "int") == 0) {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno || *end)
            return EPROTO;
        ias->attribute.integer = (unsigned int)n;
        ias->attrib_type = IR_IAS_INTEGER;
    } else if (strcmp(kind, "octets") == 0) {
        size_t n = strcmp(v, "-") == 0 ? 0 : strlen(v);
        if (n % 2 || n / 2 > sizeof ias->attribute.octet_seq.octets)
            return EPROTO;
        for (size_t i = 0; i < n / 2; i++) {
            int hi = hex_value(v[2 * i]), lo = hex_value(v[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return EPROTO;
            ias->attribute.octet_seq.octets[i] = (uint8_t)(hi << 4 | lo);
        }
        ias->attribute.octet_seq.len = (unsigned short)(n / 2);
        ias->attrib_type = IR_IAS_OCT_SEQ;
    } else if (strcmp(kind, "string") == 0) {
        unsigned long charset;
        if (a->n < first + 3 || parse_ulong(v, 0, &charset) || charset > 0xff)
            return EPROTO;
        /* the length is a byte: at most 255 bytes and the terminating NUL Linux adds */
        long n = decode(a->field[first + 2], ias->attribute.string.string, sizeof ias->attribute.string.string - 1);
        if (n < 0)
            return EPROTO;
        ias->attribute.string.len = (uint8_t)n;
        ias->attribute.string.charset = (uint8_t)charset;
        ias->attribute.string.string[n] = '\0';
        ias->attrib_type = IR_IAS_STRING;
    } else {
        return EINVAL; /* "missing": Linux has no value to give */
    }
    return 0;
}

static int enum_devices(int fd, struct irsock *s, void *val, socklen_t *len)
{
    struct answer a;
    const size_t offset = offsetof(struct ir_device_list, dev);
    if (*len < offset)
        return EINVAL;
    int rc = socket_request(fd, s, "getsockopt", "IRLMP_ENUMDEVICES", &a);
    if (rc)
        return rc;
    unsigned long count;
    if (a.n < 1 || parse_ulong(a.field[0], 10, &count) || (unsigned long)a.n < 1 + count)
        return EPROTO;
    if (count == 0)
        return EAGAIN; /* Linux: the discovery log is empty */
    if (count > IR_MAX_DISCOVERIES)
        return EINVAL;
    size_t total = offset + count * sizeof(struct ir_device_info);
    struct ir_device_list *list = calloc(1, total);
    if (!list)
        return ENOMEM;
    list->len = (uint32_t)count;
    for (unsigned long i = 0; i < count; i++) {
        struct ir_device_info *d = &list->dev[i];
        char *f = a.field[1 + i], *save = NULL;
        char *address = strtok_r(f, ",", &save), *hints = strtok_r(NULL, ",", &save);
        char *charset = strtok_r(NULL, ",", &save), *name = strtok_r(NULL, ",", &save);
        unsigned long h = 0, cs = 0;
        if (!address || !hints || !charset || !name || parse_u32(address, &d->daddr) || parse_ulong(hints, 0, &h) ||
            parse_ulong(charset, 0, &cs) || decode(name, (unsigned char *)d->info, sizeof d->info - 1) < 0) {
            free(list);
            return EPROTO;
        }
        d->saddr = get_station();
        d->hints[0] = (uint8_t)(h >> 8);
        d->hints[1] = (uint8_t)h;
        d->charset = (uint8_t)cs;
    }
    size_t n = total < *len ? total : *len;
    memcpy(val, list, n);
    *len = (socklen_t)n;
    free(list);
    return 0;
}

static int irlmp_getsockopt(int fd, struct irsock *s, int name, void *val, socklen_t *len)
{
    struct answer a;
    struct ir_ias_set ias;
    char class_name[200], attribute[800], rest[1100];
    int rc;
    if (!len || !val)
        return EFAULT;
    if ((int)*len < 0)
        return EINVAL;
    switch (name) {
    case IR_ENUMDEVICES:
        return enum_devices(fd, s, val, len);
    case IR_MAX_SDU_SIZE: {
        unsigned long n;
        if (*len < sizeof(int))
            return EINVAL;
        rc = socket_request(fd, s, "getsockopt", "IRLMP_MAX_SDU_SIZE", &a);
        if (rc)
            return rc;
        if (a.n < 1 || parse_ulong(a.field[0], 0, &n))
            return EPROTO;
        if (n == 0 && s->state == ST_DATA) {
            /* A stream has no SAR, and Linux answers the TinyTP segment size the link allows instead (OpenOBEX
             * takes it as its MTU): the daemon knows it as IRLMP_SEND_PDU_LEN. */
            rc = socket_request(fd, s, "getsockopt", "IRLMP_SEND_PDU_LEN", &a);
            if (rc)
                return rc;
            if (a.n < 1 || parse_ulong(a.field[0], 0, &n))
                return EPROTO;
        }
        int v = (int)n;
        memcpy(val, &v, sizeof v);
        *len = sizeof v;
        return 0;
    }
    case IR_IAS_GET:
    case IR_IAS_QUERY:
        if (*len != sizeof ias)
            return EINVAL;
        memcpy(&ias, val, sizeof ias);
        if (name == IR_IAS_GET) {
            if ((rc = ias_class(s, &ias, class_name, sizeof class_name)))
                return rc;
            ias_attribute(&ias, attribute, sizeof attribute);
            snprintf(rest, sizeof rest, "IRLMP_IAS_GET %s %s", class_name, attribute);
        } else {
            /* a connected socket asks its peer; otherwise the device the structure names */
            uint32_t device = s->state == ST_DATA ? s->peer_addr : ias.daddr;
            if (device == 0 || device == IR_DEV_ADDR_ANY)
                return EINVAL;
            encode(class_name, sizeof class_name, ias.class_name, strnlen(ias.class_name, sizeof ias.class_name));
            ias_attribute(&ias, attribute, sizeof attribute);
            snprintf(rest, sizeof rest, "IRLMP_IAS_QUERY 0x%08x %s %s", (unsigned)device, class_name, attribute);
        }
        rc = socket_request(fd, s, "getsockopt", rest, &a);
        /* Linux: our own attribute missing is EINVAL; the peer's IAS saying "no such class or attribute" is
         * EADDRNOTAVAIL (OpenOBEX tests for it), where the Python layer says ECONNREFUSED as Windows does; an IAS
         * query never fails with ECONNREFUSED on Linux */
        if (rc)
            return name == IR_IAS_GET ? (rc == ECONNREFUSED || rc == EADDRNOTAVAIL ? EINVAL : rc)
                                      : (rc == ECONNREFUSED ? EADDRNOTAVAIL : rc);
        if ((rc = ias_value(&a, 0, &ias)))
            return rc;
        memcpy(val, &ias, sizeof ias);
        return 0;
    case IR_WAITDEVICE: {
        int ms;
        uint32_t address;
        if (*len != sizeof(int))
            return EINVAL;
        memcpy(&ms, val, sizeof ms);
        snprintf(rest, sizeof rest, "IRLMP_WAITDEVICE %d", ms < 0 ? 0 : ms);
        rc = socket_request(fd, s, "getsockopt", rest, &a);
        if (rc)
            return rc;
        if (a.n < 1 || parse_u32(a.field[0], &address))
            return EPROTO;
        memcpy(val, &address, sizeof address);
        return 0;
    }
    default: /* IAS_SET, HINTS_SET and the others are set-only; QOS_GET never was implemented */
        return ENOPROTOOPT;
    }
}

int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    init();
    struct irsock *s = hold(fd);
    if (!s)
        return real_getsockopt(fd, level, name, val, len);
    int rc = 0;
    if (level == SOL_SOCKET) {
        int v;
        switch (name) { /* what the descriptor is to the program, not what carries it */
        case SO_DOMAIN:
            v = IR_AF_IRDA;
            break;
        case SO_TYPE:
            v = s->type;
            break;
        case SO_PROTOCOL:
            v = s->protocol;
            break;
        case SO_ACCEPTCONN:
            v = s->state == ST_LISTEN;
            break;
        default:
            release(s);
            return real_getsockopt(fd, level, name, val, len);
        }
        if (!val || !len)
            rc = EFAULT;
        else if ((int)*len < 0)
            rc = EINVAL;
        else {
            memcpy(val, &v, *len < sizeof v ? *len : sizeof v);
            *len = *len < sizeof v ? *len : sizeof v;
        }
    } else if (level != IR_SOL_IRLMP) {
        rc = ENOPROTOOPT;
    } else {
        pthread_mutex_lock(&s->io);
        rc = irlmp_getsockopt(fd, s, name, val, len);
        pthread_mutex_unlock(&s->io);
    }
    release(s);
    return rc ? fail(rc) : 0;
}

/* A hint option's value as Linux reads it: the first two bytes in memory are the first and second hint byte. */
static unsigned hint_word(const void *val)
{
    const unsigned char *b = val;
    return (unsigned)b[0] << 8 | b[1];
}

static int irlmp_setsockopt(int fd, struct irsock *s, int name, const void *val, socklen_t len)
{
    struct answer a;
    struct ir_ias_set ias;
    char class_name[200], attribute[800], value[2100], rest[3300];
    int rc;
    if (!val && len)
        return EFAULT;
    switch (name) {
    case IR_IAS_SET:
    case IR_IAS_DEL:
        if (len != sizeof ias || !val)
            return EINVAL;
        memcpy(&ias, val, sizeof ias);
        if ((rc = ias_class(s, &ias, class_name, sizeof class_name)))
            return rc;
        ias_attribute(&ias, attribute, sizeof attribute);
        if (name == IR_IAS_DEL) {
            snprintf(rest, sizeof rest, "IRLMP_IAS_DEL %s %s", class_name, attribute);
        } else if (ias.attrib_type == IR_IAS_INTEGER) {
            snprintf(rest, sizeof rest, "IRLMP_IAS_SET %s %s int %d", class_name, attribute,
                     (int)ias.attribute.integer);
        } else if (ias.attrib_type == IR_IAS_OCT_SEQ) {
            size_t n = ias.attribute.octet_seq.len;
            if (n > sizeof ias.attribute.octet_seq.octets)
                return EINVAL;
            for (size_t i = 0; i < n; i++)
                snprintf(value + 2 * i, 3, "%02x", ias.attribute.octet_seq.octets[i]);
            snprintf(rest, sizeof rest, "IRLMP_IAS_SET %s %s octets %s", class_name, attribute, n ? value : "-");
        } else if (ias.attrib_type == IR_IAS_STRING) {
            /* Linux ends the string at its length byte and then at its first NUL */
            size_t n = strnlen((const char *)ias.attribute.string.string, ias.attribute.string.len);
            encode(value, sizeof value, ias.attribute.string.string, n);
            snprintf(rest, sizeof rest, "IRLMP_IAS_SET %s %s string %u %s", class_name, attribute,
                     (unsigned)ias.attribute.string.charset, value);
        } else {
            return EINVAL;
        }
        rc = socket_request(fd, s, "setsockopt", rest, &a);
        if (rc == EADDRNOTAVAIL && name == IR_IAS_DEL)
            rc = EINVAL; /* Linux: no such attribute of ours to delete */
        return rc;
    case IR_HINTS_SET:
    case IR_HINT_MASK_SET:
        if (len < sizeof(int))
            return EINVAL;
        if (name == IR_HINTS_SET)
            snprintf(rest, sizeof rest, "IRLMP_HINTS_SET 0x%04x", hint_word(val));
        else /* Linux ignores the extension bits; 0 is "no filter" */
            snprintf(rest, sizeof rest, "IRLMP_HINT_MASK_SET 0x%04x", hint_word(val) & 0x7f7f);
        return socket_request(fd, s, "setsockopt", rest, &a);
    case IR_MAX_SDU_SIZE: {
        int n;
        if (len < sizeof n)
            return EINVAL;
        memcpy(&n, val, sizeof n);
        snprintf(rest, sizeof rest, "IRLMP_MAX_SDU_SIZE %d", n);
        return socket_request(fd, s, "setsockopt", rest, &a);
    }
    default: /* ENUMDEVICES, IAS_QUERY, IAS_GET, WAITDEVICE are get-only; QOS_SET never was implemented */
        return ENOPROTOOPT;
    }
}

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    init();
    struct irsock *s = hold(fd);
    if (!s)
        return real_setsockopt(fd, level, name, val, len);
    int rc;
    if (level == SOL_SOCKET) { /* buffer sizes, timeouts: they apply to the descriptor that carries the data */
        release(s);
        return real_setsockopt(fd, level, name, val, len);
    }
    if (level != IR_SOL_IRLMP) {
        rc = ENOPROTOOPT;
    } else {
        pthread_mutex_lock(&s->io);
        rc = irlmp_setsockopt(fd, s, name, val, len);
        pthread_mutex_unlock(&s->io);
    }
    release(s);
    return rc ? fail(rc) : 0;
}

/* --- names -------------------------------------------------------------------------------------------------------- */
int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    init();
    struct irsock *s = hold(fd);
    if (!s)
        return real_getsockname(fd, addr, len);
    struct answer a;
    int rc = 0;
    if (!addr || !len) {
        rc = EFAULT;
    } else if ((int)*len < 0) {
        rc = EINVAL;
    } else {
        pthread_mutex_lock(&s->io);
        rc = socket_request(fd, s, "getsockname", "", &a);
        pthread_mutex_unlock(&s->io);
        uint32_t address = 0;
        if (!rc && (a.n < 1 || parse_u32(a.field[0], &address)))
            rc = EPROTO;
        if (!rc) {
            int lsap = a.n >= 2 ? lsap_of(a.field[1]) : -1;
            set_station(address);
            put_address(addr, len, address, lsap >= 0 ? (unsigned)lsap : s->local_lsap);
        }
    }
    release(s);
    return rc ? fail(rc) : 0;
}

int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    init();
    struct irsock *s = hold(fd);
    if (!s)
        return real_getpeername(fd, addr, len);
    int rc = 0;
    if (s->state != ST_DATA)
        rc = ENOTCONN;
    else if (!addr || !len)
        rc = EFAULT;
    else if ((int)*len < 0)
        rc = EINVAL;
    else /* connect's and take's answers named the peer: no need to ask */
        put_address(addr, len, s->peer_addr, s->peer_lsap);
    release(s);
    return rc ? fail(rc) : 0;
}

/* --- the descriptor's life ----------------------------------------------------------------------------------- */
int shutdown(int fd, int how)
{
    init();
    struct irsock *s = hold(fd);
    if (!s)
        return real_shutdown(fd, how);
    release(s);
    /* Linux's IrDA shutdown ends the connection whatever `how` says (a disconnect queued after the data): the
     * daemon does that when the connection's write side ends, so SHUT_RD ends both sides here. Before connect,
     * the daemon ends the socket when its connection ends, as Linux tears an unconnected socket down. */
    return real_shutdown(fd, how == SHUT_RD ? SHUT_RDWR : how);
}

/* The anchor's number taken over by the program (it closed the descriptor, or made it another one). */
static void anchor_lost(int fd)
{
    if (fd >= 0 && fd == __atomic_load_n(&anchor_fd, __ATOMIC_RELAXED)) {
        pthread_mutex_lock(&anchor_lock);
        if (fd == anchor_fd)
            anchor_fd = -1;
        pthread_mutex_unlock(&anchor_lock);
    }
}

int close(int fd)
{
    init();
    forget(fd); /* before the number can be handed out again */
    anchor_lost(fd);
    return real_close(fd);
}

/* newfd now refers to what oldfd does: the same AF_IRDA socket when it is one. */
static void duplicated(int oldfd, int newfd)
{
    struct irsock *s = hold(oldfd);
    if (s) {
        remember(newfd, s);
        release(s);
    }
}

int dup(int fd)
{
    init();
    int n = real_dup(fd);
    if (n >= 0)
        duplicated(fd, n);
    return n;
}

int dup2(int fd, int newfd)
{
    init();
    if (fd != newfd) {
        forget(newfd);
        anchor_lost(newfd);
    }
    int n = real_dup2(fd, newfd);
    if (n >= 0 && fd != newfd)
        duplicated(fd, n);
    return n;
}

int dup3(int fd, int newfd, int flags)
{
    init();
    if (fd != newfd) {
        forget(newfd);
        anchor_lost(newfd);
    }
    int n = real_dup3(fd, newfd, flags);
    if (n >= 0)
        duplicated(fd, n);
    return n;
}

/* fcntl's third argument is read as a pointer-sized word whatever the command, as glibc itself does. */
static int fcntl_common(int (*next)(int, int, ...), int fd, int cmd, void *arg)
{
    int rc = next(fd, cmd, arg);
    if (rc >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
        duplicated(fd, rc);
    /* F_SETFL's O_NONBLOCK needs no bookkeeping: the library asks F_GETFL when it matters (accept), and waits
     * for the daemon's answers with poll whatever the flag. */
    return rc;
}

int fcntl(int fd, int cmd, ...)
{
    init();
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(real_fcntl, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
    init();
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(real_fcntl64, fd, cmd, arg);
}
