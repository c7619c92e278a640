/* plug.h: endpoints by URL. A plug joins the fabric to something outside: a VDE switch, a
 * point-to-point socket, a tap, a child process, QEMU, slirp. As in vdeplug4, each scheme is one
 * small table of functions chosen by the URL's "scheme://" prefix, and one file implements it. */
#ifndef VSQ_PLUG_H
#define VSQ_PLUG_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"
#include "port.h"

/* Room for the error messages that vsq_plug_open and the schemes write. */
#define VSQ_PLUG_ERRLEN 256
/* Longest URL kept (vdeplug4 has no limit; this is PATH_MAX plus options). */
#define VSQ_PLUG_URL_MAX 4352

struct vsq_plug;

/* Open options that do not come from the URL: vdeplug4's vde_open_args plus the description.
 * A zeroed struct (or NULL) means defaults. Options written in the URL win over these. */
struct vsq_plug_args {
	const char *descr; /* what the switch shows for this connection; "vsq" if NULL */
	int port;	   /* switch port: 0 any, N port N, -1 the management port 0 */
	const char *group; /* group of the sockets the plug creates: name or number */
	mode_t mode; /* permissions of the sockets the plug creates; 0 is the scheme default */
	const struct vsq_log *log; /* where its messages go; NULL drops them; must outlive it */
};

/* Counters of one endpoint. "rx" is from the URL side into the fabric, "tx" the other way. */
struct vsq_plug_stats {
	uint64_t rx_frames, rx_bytes; /* from the URL side, handed to the port's peer */
	uint64_t tx_frames, tx_bytes; /* from the port's peer, given to the URL side */
	uint64_t rx_malformed;	      /* dropped: runts, bad length prefixes, oversize frames */
	uint64_t rx_dropped;	      /* good frames the port's peer refused (or no peer) */
	uint64_t tx_dropped;	      /* frames the URL side could not take (full, down, runt) */
};

/* ---- Using plugs ---------------------------------------------------------------------------- */

/* Open `url` on `loop`. A URL without "://" is a vde:// path; an empty URL is resolved as
 * libvdeplug does ($HOME/.vdeplug/default, $HOME/.vde2/default.switch, then the vde scheme's
 * fallbacks), and a URL naming a regular file is replaced by that file's first line.
 * Returns 0 and the endpoint in *out, or -errno with a message naming the URL and the cause in
 * err (`unknown scheme "foo" in "foo://x"`, `vde:///x[prot=3]: unknown option "prot"`).
 * -EINVAL, -EPROTONOSUPPORT, -ERANGE and -ENAMETOOLONG mean the URL itself is wrong. */
int vsq_plug_open(struct ev_loop *loop, const char *url, const struct vsq_plug_args *args,
		  struct vsq_plug **out, char *err, size_t errlen);

/* Unlink the port, release every socket file, fd, child process and buffer, free the plug.
 * Must not be called from inside the peer's receive of a frame this plug delivers. */
void vsq_plug_close(struct vsq_plug *plug);

/* The endpoint's one port: frames from the URL side leave through it (vsq_port_send), frames
 * the peer gives it go to the URL side. Link it with vsq_port_link. */
struct vsq_port *vsq_plug_port(struct vsq_plug *plug);
const char *vsq_plug_url(const struct vsq_plug *plug);
const char *vsq_plug_scheme_name(const struct vsq_plug *plug);
void vsq_plug_get_stats(const struct vsq_plug *plug, struct vsq_plug_stats *stats);
/* One line on the connection's state for people ("port 5 of /tmp/sw", "child 1234 running"). */
void vsq_plug_describe(const struct vsq_plug *plug, char *buf, size_t len);

/* The URL side's state: 0 up; -EINPROGRESS while a handshake or connect is under way (opening
 * never blocks the loop: the switch may be served by this very process); -ENOTCONN for a server
 * waiting for its peer to connect; any other -errno once it went away for good (switch gone,
 * EOF from a child or a stream: -ECONNRESET, -ETIMEDOUT, ...). Frames given to a plug that is
 * not up are dropped and counted; a plug that is down delivers nothing more. */
int vsq_plug_status(const struct vsq_plug *plug);
/* Called on every change of vsq_plug_status (from a watcher, or from inside a send that found
 * the other end gone; never from inside vsq_plug_open). It must not close the plug. */
typedef void (*vsq_plug_state_fn)(struct vsq_plug *plug, int status, void *ctx);
void vsq_plug_on_state(struct vsq_plug *plug, vsq_plug_state_fn fn, void *ctx);

/* ---- Schemes -------------------------------------------------------------------------------- */

struct vsq_plug_scheme {
	const char *name; /* without "://": "vde", "ptp", "vxvde" */
	size_t priv_size; /* bytes of zeroed private state, see vsq_plug_priv() */
	/* Open the URL side. `rest` is the URL after "name://" (a writable copy the scheme may cut
	 * up; it lives until open returns). Returns 0, or -errno after writing a message to err
	 * (the generic code prefixes the URL). Must release everything it acquired on failure;
	 * close is not called after a failed open. */
	int (*open)(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args, char *err,
		    size_t errlen);
	/* A frame (VSQ_FRAME_MIN..VSQ_FRAME_MAX bytes) for the URL side. Must not block and must
	 * not keep the pointer: send, copy into a bounded queue, or drop. 0 or -errno (dropped). */
	int (*send)(struct vsq_plug *plug, const uint8_t *frame, size_t len);
	/* Release everything open acquired: watchers, fds, socket files, children. */
	void (*close)(struct vsq_plug *plug);
	/* Optional: the connection's state for vsq_plug_describe. */
	void (*describe)(const struct vsq_plug *plug, char *buf, size_t len);
};

/* The built-in schemes are known without registration. Others (a scheme defined outside
 * core/, or one added later) register once per process; registering the same table twice is a
 * no-op, another table with a taken name is -EEXIST. The table must outlive the process's plugs. */
int vsq_plug_register(const struct vsq_plug_scheme *scheme);
/* The scheme called name[0..len), or NULL. */
const struct vsq_plug_scheme *vsq_plug_scheme_find(const char *name, size_t len);
/* Calls fn for every known scheme (built-in first), for help texts and error messages. */
void vsq_plug_scheme_foreach(void (*fn)(const struct vsq_plug_scheme *scheme, void *ctx),
			     void *ctx);

/* ---- For scheme implementations ------------------------------------------------------------- */

void *vsq_plug_priv(struct vsq_plug *plug);
struct ev_loop *vsq_plug_loop(const struct vsq_plug *plug);
/* The log the plug was opened with (vsq_plug_args.log), or NULL. */
const struct vsq_log *vsq_plug_log(const struct vsq_plug *plug);

/* A frame arrived from the URL side: hand it to the port's peer. Frames shorter than
 * VSQ_FRAME_MIN or longer than VSQ_FRAME_MAX are counted as malformed and dropped (-EINVAL).
 * Returns what vsq_port_send returned. */
int vsq_plug_deliver(struct vsq_plug *plug, const uint8_t *frame, size_t len);
/* Count a frame from the URL side that the scheme itself found malformed and dropped. */
void vsq_plug_count_malformed(struct vsq_plug *plug);
/* Set the state vsq_plug_status reports (a plug starts up; a scheme's open may set
 * -EINPROGRESS or -ENOTCONN before returning). Once down (any other -errno) a plug stays down:
 * later calls are ignored. The scheme stops its own watchers; close is still called later. */
void vsq_plug_set_status(struct vsq_plug *plug, int status);
/* vsq_plug_set_status with a -errno that means "gone for good" (-ECONNRESET if err >= 0). */
void vsq_plug_set_down(struct vsq_plug *plug, int err);

/* vdeplug4 option parsing (parseparms.c). Both cut `str` in place; values point into it.
 * `params` ends with a {NULL, NULL} entry; a key matches when the text written before '='
 * is a prefix of it ("p=5" sets "port"); a key written without '=' gets the value "".
 * Quotes ('..', ".."), backslash escapes and %XX hex escapes protect delimiters.
 * Unknown keys fail with -EINVAL and `unknown option "KEY"` in err. */
struct vsq_plug_param {
	const char *key;
	const char **value; /* left untouched when the key is absent */
};
/* PATH[key=value/key2/...]: sets *path to the text before '['. In path style, a word that is no
 * known key goes to the first param when its key is "" (vde:///sw[5] means port 5). */
int vsq_plug_parse_path_params(char *str, const char **path, const struct vsq_plug_param *params,
			       char *err, size_t errlen);
/* ADDR/key=value/key2...: sets *addr to the first '/'-separated word (vxvde, vxlan, slirp). */
int vsq_plug_parse_params(char *str, const char **addr, const struct vsq_plug_param *params,
			  char *err, size_t errlen);
/* Numbers with k/K m/M g/G t/T suffixes in powers of 1024 (vdeplug4's strtoullm), with bounds:
 * -EINVAL (not a number) or -ERANGE (above max), message naming `what` in err. */
int vsq_plug_parse_number(const char *text, const char *what, uint64_t max, uint64_t *out,
			  char *err, size_t errlen);
/* A group name or number ("" = the effective gid), -EINVAL with a message if unknown. */
int vsq_plug_parse_group(const char *text, gid_t *out, char *err, size_t errlen);

#endif
