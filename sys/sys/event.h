/*
 * Kernel event notification (kqueue(2), kevent(2)): the structure and
 * constants userland shares with the kernel, with FreeBSD 12+'s names,
 * numbers and layout (sys/sys/event.h). C and C++. Linux has no
 * <sys/event.h>; a program that included libkqueue's header first keeps
 * libkqueue's definitions (the guards below), whose struct kevent lacks
 * ext[4] and so must not be handed to uk_kevent().
 */
#ifndef UKTLS_SYS_SYS_EVENT_H_
#define UKTLS_SYS_SYS_EVENT_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if !defined(_SYS_EVENT_H_) && !defined(_SYS_EVENT_H)
/* FreeBSD 12's struct kevent (the ino64 layout, with ext[4]). */
struct kevent {
  uintptr_t ident;     /* identifier: a descriptor for the socket filters */
  short filter;        /* EVFILT_* */
  unsigned short flags; /* EV_* actions and returned flags */
  unsigned int fflags; /* filter flags (NOTE_*) */
  int64_t data;        /* filter data */
  void* udata;         /* opaque, returned as given */
  uint64_t ext[4];     /* extensions; returned as given */
};
#endif

#ifndef EV_SET
#define EV_SET(kevp_, a, b, c, d, e, f)      \
  do {                                       \
    struct kevent* ev_set_kevp_ = (kevp_);   \
    ev_set_kevp_->ident = (a);               \
    ev_set_kevp_->filter = (b);              \
    ev_set_kevp_->flags = (c);               \
    ev_set_kevp_->fflags = (d);              \
    ev_set_kevp_->data = (e);                \
    ev_set_kevp_->udata = (f);               \
    ev_set_kevp_->ext[0] = 0;                \
    ev_set_kevp_->ext[1] = 0;                \
    ev_set_kevp_->ext[2] = 0;                \
    ev_set_kevp_->ext[3] = 0;                \
  } while (0)
#endif

/* Filters. uktls implements the two socket filters. */
#ifndef EVFILT_READ
#define EVFILT_READ (-1)
#endif
#ifndef EVFILT_WRITE
#define EVFILT_WRITE (-2)
#endif

/* Actions. */
#ifndef EV_ADD
#define EV_ADD 0x0001     /* add the event (implies enable) */
#endif
#ifndef EV_DELETE
#define EV_DELETE 0x0002  /* delete the event */
#endif
#ifndef EV_ENABLE
#define EV_ENABLE 0x0004  /* enable the event */
#endif
#ifndef EV_DISABLE
#define EV_DISABLE 0x0008 /* disable the event (not reported) */
#endif
#ifndef EV_FORCEONESHOT
#define EV_FORCEONESHOT 0x0100 /* make an existing event oneshot and report it */
#endif
#ifndef EV_KEEPUDATA
#define EV_KEEPUDATA 0x0200 /* a change leaves the event's udata alone */
#endif

/* Flags. */
#ifndef EV_ONESHOT
#define EV_ONESHOT 0x0010  /* report once, then delete */
#endif
#ifndef EV_CLEAR
#define EV_CLEAR 0x0020    /* edge: clear state after reporting */
#endif
#ifndef EV_RECEIPT
#define EV_RECEIPT 0x0040  /* return each change's result as EV_ERROR */
#endif
#ifndef EV_DISPATCH
#define EV_DISPATCH 0x0080 /* disable after reporting */
#endif

/* Returned. */
#ifndef EV_ERROR
#define EV_ERROR 0x4000 /* a change failed: data holds the errno */
#endif
#ifndef EV_EOF
#define EV_EOF 0x8000   /* end of file / the direction is shut */
#endif

/* EVFILT_READ / EVFILT_WRITE: data is the low water mark. */
#ifndef NOTE_LOWAT
#define NOTE_LOWAT 0x0001
#endif

#ifdef __cplusplus
}
#endif

#endif /* UKTLS_SYS_SYS_EVENT_H_ */
