/*
 * afirda_check.c -- a small Linux AF_IRDA program for tests/test_preload.py: it uses the socket API exactly as
 * programs written for the kernel's IrDA stack did (the structures of <linux/irda.h>, declared here because that
 * header left the kernel with the stack), and prints what each call returned, one "key value..." line each.
 *
 *   afirda_check probe              the calls and their errno values on one station (no peer needed)
 *   afirda_check server NAME COUNT  bind NAME, listen, and COUNT times: select, accept, read "BYTES\n" and the
 *                                   bytes, answer their length and checksum, wait for the client's close
 *   afirda_check threads N          N threads at once: sockets, options, names, dup and close, 25 times each
 *   afirda_check client NAME BYTES [auto]
 *                                   discover, IAS-query NAME, connect (by address, or Linux's auto-connect with
 *                                   "auto"), send "BYTES\n" and BYTES bytes, read the server's answer, close
 *
 * Errors print as their errno number (the test turns them into names), so no output depends on the C library's
 * wording.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define AFIRDA 23
#define SOL_IRLMP 266
#define IRLMP_ENUMDEVICES 1
#define IRLMP_IAS_SET 2
#define IRLMP_IAS_QUERY 3
#define IRLMP_HINTS_SET 4
#define IRLMP_MAX_SDU_SIZE 7
#define IRLMP_IAS_GET 8
#define IRLMP_IAS_DEL 9
#define IRLMP_HINT_MASK_SET 10
#define IRLMP_WAITDEVICE 11
#define IAS_INTEGER 1
#define IAS_OCT_SEQ 2
#define IAS_STRING 3
#define LSAP_ANY 0xff

struct sockaddr_irda {
    sa_family_t sir_family;
    uint8_t sir_lsap_sel;
    uint32_t sir_addr;
    char sir_name[25];
};
struct irda_device_info {
    uint32_t saddr;
    uint32_t daddr;
    char info[22];
    uint8_t charset;
    uint8_t hints[2];
};
struct irda_device_list {
    uint32_t len;
    struct irda_device_info dev[1];
};
struct irda_ias_set {
    char irda_class_name[64];
    char irda_attrib_name[256];
    unsigned int irda_attrib_type;
    union {
        unsigned int irda_attrib_int;
        struct {
            unsigned short len;
            uint8_t octet_seq[1024];
        } irda_attrib_octet_seq;
        struct {
            uint8_t len;
            uint8_t charset;
            uint8_t string[256];
        } irda_attrib_string;
    } attribute;
    uint32_t daddr;
};

#define MAX_DEVICES 16

/* "key 0" on success, "key -ERRNO" on failure */
static void report(const char *key, int rc)
{
    printf("%s %d\n", key, rc < 0 ? -errno : 0);
    fflush(stdout);
}

static struct sockaddr_irda named(uint32_t device, const char *name)
{
    struct sockaddr_irda sa;
    memset(&sa, 0, sizeof sa);
    sa.sir_family = AFIRDA;
    sa.sir_lsap_sel = LSAP_ANY;
    sa.sir_addr = device;
    snprintf(sa.sir_name, sizeof sa.sir_name, "%s", name);
    return sa;
}

static struct irda_ias_set ias_of(const char *class_name, const char *attribute)
{
    struct irda_ias_set ias;
    memset(&ias, 0, sizeof ias);
    snprintf(ias.irda_class_name, sizeof ias.irda_class_name, "%s", class_name);
    snprintf(ias.irda_attrib_name, sizeof ias.irda_attrib_name, "%s", attribute);
    return ias;
}

static uint32_t fnv(const unsigned char *p, size_t n, uint32_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* ENUMDEVICES until something answers (EAGAIN: nobody yet, as on Linux); the count, or -errno. */
static int discover(int fd, unsigned char *buf, socklen_t cap, int tries)
{
    for (int i = 0; i < tries; i++) {
        socklen_t len = cap;
        if (getsockopt(fd, SOL_IRLMP, IRLMP_ENUMDEVICES, buf, &len) == 0)
            return (int)((struct irda_device_list *)buf)->len;
        if (errno != EAGAIN)
            return -errno;
    }
    return -EAGAIN;
}

static int probe(void)
{
    int rc, v;
    socklen_t len;

    int inet = socket(AF_INET, SOCK_STREAM, 0); /* a family the library leaves alone */
    len = sizeof v;
    rc = getsockopt(inet, SOL_SOCKET, SO_DOMAIN, &v, &len);
    printf("inet_domain %d\n", rc < 0 ? -errno : v);
    close(inet);

    int s = socket(AF_IRDA, SOCK_STREAM | SOCK_CLOEXEC, 0);
    printf("socket_fd %d\n", s < 0 ? -errno : s);
    if (s < 0)
        return 1;
    printf("cloexec %d\n", (fcntl(s, F_GETFD) & FD_CLOEXEC) ? 1 : 0);
    report("socket_raw", socket(AF_IRDA, SOCK_RAW, 0));
    report("socket_ultra", socket(AF_IRDA, SOCK_DGRAM, 1));
    len = sizeof v;
    getsockopt(s, SOL_SOCKET, SO_DOMAIN, &v, &len);
    printf("so_domain %d\n", v);
    len = sizeof v;
    getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &len);
    printf("so_type %d\n", v);
    len = sizeof v;
    report("opt_level_ip", getsockopt(s, 0 /* SOL_IP */, 1, &v, &len));
    v = 0;
    report("opt_unknown", setsockopt(s, SOL_IRLMP, 99, &v, sizeof v));
    report("opt_qos_get", getsockopt(s, SOL_IRLMP, 6, &v, &len));

    struct sockaddr_irda sa;
    len = sizeof sa;
    report("getpeername_unconnected", getpeername(s, (struct sockaddr *)&sa, &len));
    sa = named(0, "x");
    report("bind_short", bind(s, (struct sockaddr *)&sa, 10));
    unsigned char small[2];
    len = sizeof small;
    report("enum_short", getsockopt(s, SOL_IRLMP, IRLMP_ENUMDEVICES, small, &len));
    struct irda_ias_set ias = ias_of("Device", "DeviceName");
    len = sizeof ias - 1;
    report("ias_query_len", getsockopt(s, SOL_IRLMP, IRLMP_IAS_QUERY, &ias, &len));
    len = sizeof ias;
    ias.daddr = 0;
    report("ias_query_noaddr", getsockopt(s, SOL_IRLMP, IRLMP_IAS_QUERY, &ias, &len));
    ias = ias_of("", "Probe:Int");
    len = sizeof ias;
    report("ias_get_unbound", getsockopt(s, SOL_IRLMP, IRLMP_IAS_GET, &ias, &len));

    sa = named(0, "irsock-probe");
    report("bind", bind(s, (struct sockaddr *)&sa, sizeof sa));
    report("bind_again", bind(s, (struct sockaddr *)&sa, sizeof sa));
    len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    rc = getsockname(s, (struct sockaddr *)&sa, &len);
    printf("getsockname %d family=%d lsap=%d len=%d\n", rc < 0 ? -errno : 0, sa.sir_family, sa.sir_lsap_sel,
           (int)len);

    /* our own IAS entries, under the bound name (an empty class name means it, as on Linux) */
    ias = ias_of("", "Probe:Int");
    ias.irda_attrib_type = IAS_INTEGER;
    ias.attribute.irda_attrib_int = 42;
    report("ias_set_int", setsockopt(s, SOL_IRLMP, IRLMP_IAS_SET, &ias, sizeof ias));
    ias = ias_of("irsock-probe", "Probe:String");
    ias.irda_attrib_type = IAS_STRING;
    ias.attribute.irda_attrib_string.len = 5;
    memcpy(ias.attribute.irda_attrib_string.string, "hello", 5);
    report("ias_set_string", setsockopt(s, SOL_IRLMP, IRLMP_IAS_SET, &ias, sizeof ias));
    ias = ias_of("irsock-probe", "Probe:Octets");
    ias.irda_attrib_type = IAS_OCT_SEQ;
    ias.attribute.irda_attrib_octet_seq.len = 3;
    memcpy(ias.attribute.irda_attrib_octet_seq.octet_seq, "\x01\x02\xff", 3);
    report("ias_set_octets", setsockopt(s, SOL_IRLMP, IRLMP_IAS_SET, &ias, sizeof ias));
    report("ias_set_short", setsockopt(s, SOL_IRLMP, IRLMP_IAS_SET, &ias, 100));

    ias = ias_of("", "Probe:Int");
    len = sizeof ias;
    rc = getsockopt(s, SOL_IRLMP, IRLMP_IAS_GET, &ias, &len);
    printf("ias_get_int %d type=%u value=%u\n", rc < 0 ? -errno : 0, ias.irda_attrib_type,
           ias.attribute.irda_attrib_int);
    ias = ias_of("irsock-probe", "Probe:String");
    len = sizeof ias;
    rc = getsockopt(s, SOL_IRLMP, IRLMP_IAS_GET, &ias, &len);
    printf("ias_get_string %d type=%u len=%u value=%s\n", rc < 0 ? -errno : 0, ias.irda_attrib_type,
           ias.attribute.irda_attrib_string.len, (char *)ias.attribute.irda_attrib_string.string);
    ias = ias_of("irsock-probe", "Probe:Octets");
    len = sizeof ias;
    rc = getsockopt(s, SOL_IRLMP, IRLMP_IAS_GET, &ias, &len);
    printf("ias_get_octets %d type=%u len=%u value=%02x%02x%02x\n", rc < 0 ? -errno : 0, ias.irda_attrib_type,
           ias.attribute.irda_attrib_octet_seq.len, ias.attribute.irda_attrib_octet_seq.octet_seq[0],
           ias.attribute.irda_attrib_octet_seq.octet_seq[1], ias.attribute.irda_attrib_octet_seq.octet_seq[2]);
    ias = ias_of("", "Probe:Int");
    report("ias_del", setsockopt(s, SOL_IRLMP, IRLMP_IAS_DEL, &ias, sizeof ias));
    len = sizeof ias;
    report("ias_get_deleted", getsockopt(s, SOL_IRLMP, IRLMP_IAS_GET, &ias, &len));

    unsigned char hints[4] = {0x80, 0x20, 0, 0}; /* extension, OBEX: what OpenOBEX servers set */
    report("hints_set", setsockopt(s, SOL_IRLMP, IRLMP_HINTS_SET, hints, sizeof hints));
    report("listen", listen(s, 1));
    len = sizeof v;
    getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &v, &len);
    printf("acceptconn %d\n", v);
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
    report("accept_nonblocking", accept(s, NULL, NULL));
    sa = named(0x12345678, "OBEX");
    report("connect_listening", connect(s, (struct sockaddr *)&sa, sizeof sa));
    int d = dup(s);
    len = sizeof v;
    getsockopt(d, SOL_SOCKET, SO_DOMAIN, &v, &len);
    printf("dup_domain %d\n", v);
    close(d);
    len = sizeof v;
    rc = getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &v, &len);
    printf("after_dup_close %d\n", rc < 0 ? -errno : v);

    /* discovery and name resolution on a second socket */
    int c = socket(AF_IRDA, SOCK_STREAM, 0);
    unsigned char buf[sizeof(struct irda_device_list) + (MAX_DEVICES - 1) * sizeof(struct irda_device_info)];
    int count = discover(c, buf, sizeof buf, 3);
    printf("enumdevices %d\n", count);
    struct irda_device_list *list = (struct irda_device_list *)buf;
    for (int i = 0; i < count && i < MAX_DEVICES; i++)
        printf("device 0x%08x hints=%02x%02x charset=%d name=%s saddr=0x%08x\n", list->dev[i].daddr,
               list->dev[i].hints[0], list->dev[i].hints[1], list->dev[i].charset, list->dev[i].info,
               list->dev[i].saddr);
    if (count > 0) {
        uint32_t first = list->dev[0].daddr;
        ias = ias_of("Device", "DeviceName");
        ias.daddr = first;
        len = sizeof ias;
        rc = getsockopt(c, SOL_IRLMP, IRLMP_IAS_QUERY, &ias, &len);
        printf("ias_query_devicename %d type=%u value=%s\n", rc < 0 ? -errno : 0, ias.irda_attrib_type,
               rc < 0 ? "" : (char *)ias.attribute.irda_attrib_string.string);
        ias = ias_of("NoSuchClass", "IrDA:TinyTP:LsapSel");
        ias.daddr = first;
        len = sizeof ias;
        report("ias_query_missing", getsockopt(c, SOL_IRLMP, IRLMP_IAS_QUERY, &ias, &len));
        sa = named(first, "NoSuchService");
        report("connect_missing", connect(c, (struct sockaddr *)&sa, sizeof sa));
        sa = named(0, "NoSuchService");
        report("autoconnect_missing", connect(c, (struct sockaddr *)&sa, sizeof sa));
    }
    close(c);
    close(s);
    report("closed_fd", fcntl(s, F_GETFD));
    return 0;
}

static int server(const char *name, int count)
{
    int s = socket(AF_IRDA, SOCK_STREAM, 0);
    if (s < 0) {
        report("socket", -1);
        return 1;
    }
    unsigned char hints[4] = {0x80, 0x20, 0, 0};
    setsockopt(s, SOL_IRLMP, IRLMP_HINTS_SET, hints, sizeof hints);
    struct sockaddr_irda sa = named(0, name);
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 2) < 0) {
        report("bind_listen", -1);
        return 1;
    }
    socklen_t len = sizeof sa;
    getsockname(s, (struct sockaddr *)&sa, &len);
    printf("listening lsap=%d address=0x%08x\n", sa.sir_lsap_sel, sa.sir_addr);
    fflush(stdout);
    for (int i = 0; i < count; i++) {
        fd_set r;
        FD_ZERO(&r);
        FD_SET(s, &r);
        if (select(s + 1, &r, NULL, NULL, NULL) != 1) { /* the listener turns readable: a peer connected */
            report("select", -1);
            return 1;
        }
        struct sockaddr_irda peer;
        len = sizeof peer;
        int c = accept4(s, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
        if (c < 0) {
            report("accept", -1);
            return 1;
        }
        int mtu = 0;
        socklen_t mlen = sizeof mtu;
        int rc = getsockopt(c, SOL_IRLMP, IRLMP_MAX_SDU_SIZE, &mtu, &mlen);
        struct sockaddr_irda me;
        socklen_t melen = sizeof me;
        int rn = getsockname(c, (struct sockaddr *)&me, &melen);
        printf("accepted family=%d peer=0x%08x lsap=%d mtu=%d/%d name=%d\n", peer.sir_family, peer.sir_addr,
               peer.sir_lsap_sel, rc < 0 ? -errno : 0, mtu, rn < 0 ? -errno : me.sir_lsap_sel);
        fflush(stdout);
        /* "BYTES\n", then that many bytes; the answer goes back before either side closes: IrDA has no
         * half-close (Linux's shutdown disconnects), so a reply after the client's shutdown would be lost */
        char header[32];
        size_t got = 0;
        while (got < sizeof header - 1 && read(c, header + got, 1) == 1 && header[got] != '\n')
            got++;
        header[got] = '\0';
        long expected = atol(header), total = 0;
        unsigned char buf[4096];
        uint32_t h = 2166136261u;
        ssize_t n;
        while (total < expected &&
               (n = read(c, buf, (size_t)(expected - total < (long)sizeof buf ? expected - total : (long)sizeof buf))) > 0) {
            h = fnv(buf, (size_t)n, h);
            total += n;
        }
        char answer[64];
        int k = snprintf(answer, sizeof answer, "len=%ld sum=%08x\n", total, h);
        printf("received %s", answer);
        fflush(stdout);
        if (write(c, answer, (size_t)k) != k)
            report("write", -1);
        n = read(c, buf, sizeof buf); /* the client closes after reading the answer */
        printf("eof %zd\n", n);
        close(c);
    }
    close(s);
    return 0;
}

static int client(const char *name, long bytes, int automatic)
{
    int s = socket(AF_IRDA, SOCK_STREAM, 0);
    if (s < 0) {
        report("socket", -1);
        return 1;
    }
    unsigned char buf[sizeof(struct irda_device_list) + (MAX_DEVICES - 1) * sizeof(struct irda_device_info)];
    int count = discover(s, buf, sizeof buf, 20);
    printf("enumdevices %d\n", count);
    struct irda_device_list *list = (struct irda_device_list *)buf;
    uint32_t target = 0;
    for (int i = 0; i < count && i < MAX_DEVICES; i++) {
        struct irda_ias_set ias = ias_of(name, "IrDA:TinyTP:LsapSel");
        ias.daddr = list->dev[i].daddr;
        socklen_t len = sizeof ias;
        int rc = getsockopt(s, SOL_IRLMP, IRLMP_IAS_QUERY, &ias, &len);
        printf("ias 0x%08x %d lsap=%d\n", list->dev[i].daddr, rc < 0 ? -errno : 0,
               rc < 0 ? -1 : (int)ias.attribute.irda_attrib_int);
        if (rc == 0)
            target = list->dev[i].daddr;
    }
    struct sockaddr_irda sa = named(automatic ? 0 : target, name);
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        report("connect", -1);
        return 1;
    }
    struct sockaddr_irda peer;
    socklen_t len = sizeof peer;
    getpeername(s, (struct sockaddr *)&peer, &len);
    int mtu = 0;
    socklen_t mlen = sizeof mtu;
    int rc = getsockopt(s, SOL_IRLMP, IRLMP_MAX_SDU_SIZE, &mtu, &mlen);
    printf("connected peer=0x%08x lsap=%d mtu=%d/%d\n", peer.sir_addr, peer.sir_lsap_sel, rc < 0 ? -errno : 0, mtu);
    fflush(stdout);
    char header[32];
    int k = snprintf(header, sizeof header, "%ld\n", bytes);
    if (write(s, header, (size_t)k) != k) {
        report("write", -1);
        return 1;
    }
    unsigned char chunk[1000];
    uint32_t h = 2166136261u, x = 12345;
    for (long sent = 0; sent < bytes;) {
        size_t n = (size_t)(bytes - sent < (long)sizeof chunk ? bytes - sent : (long)sizeof chunk);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            chunk[i] = (unsigned char)(x >> 16);
        }
        ssize_t w = write(s, chunk, n);
        if (w <= 0) {
            report("write", -1);
            return 1;
        }
        h = fnv(chunk, (size_t)w, h);
        sent += w;
        if ((size_t)w < n) /* keep the generator in step: regenerate from what was written */
            return 1;
    }
    printf("sent len=%ld sum=%08x\n", bytes, h);
    char answer[128];
    size_t got = 0;
    while (got < sizeof answer - 1 && read(s, answer + got, 1) == 1 && answer[got++] != '\n')
        ;
    answer[got] = '\0';
    printf("reply %s", answer);
    close(s);
    return 0;
}

/* One thread's round of calls on sockets of its own while the others do the same (the descriptor table and the
 * session's shared connection under contention); the number of calls that did not do what they should. */
static void *churn(void *arg)
{
    long failures = 0;
    (void)arg;
    for (int i = 0; i < 25; i++) {
        int s = socket(AF_IRDA, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) {
            failures++;
            continue;
        }
        unsigned char mask[4] = {0x80, 0x20, 0, 0};
        failures += setsockopt(s, SOL_IRLMP, IRLMP_HINT_MASK_SET, mask, sizeof mask) != 0;
        struct sockaddr_irda sa;
        socklen_t len = sizeof sa;
        failures += getsockname(s, (struct sockaddr *)&sa, &len) != 0 || sa.sir_family != AFIRDA;
        int d = dup(s), v = 0;
        len = sizeof v;
        failures += d < 0 || getsockopt(d, SOL_SOCKET, SO_DOMAIN, &v, &len) != 0 || v != AFIRDA;
        close(d);
        len = sizeof sa;
        failures += getpeername(s, (struct sockaddr *)&sa, &len) == 0 || errno != ENOTCONN;
        close(s);
    }
    return (void *)failures;
}

static int threads(int n)
{
    pthread_t t[64];
    long failures = 0;
    if (n < 1 || n > 64)
        return 2;
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(t[i], &r);
        failures += (long)r;
    }
    printf("threads %d failures %ld\n", n, failures);
    return failures != 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "probe") == 0)
        return probe();
    if (argc >= 4 && strcmp(argv[1], "server") == 0)
        return server(argv[2], atoi(argv[3]));
    if (argc >= 3 && strcmp(argv[1], "threads") == 0)
        return threads(atoi(argv[2]));
    if (argc >= 4 && strcmp(argv[1], "client") == 0)
        return client(argv[2], atol(argv[3]), argc >= 5 && strcmp(argv[4], "auto") == 0);
    fprintf(stderr, "usage: %s probe | threads N | server NAME COUNT | client NAME BYTES [auto]\n", argv[0]);
    return 2;
}
