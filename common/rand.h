/*
 * rand.h - fast random bytes for names and identifiers.
 *
 * Object uids, generated name suffixes and Event names need bytes that do
 * not repeat, not secrets: a getrandom(2) call for each cost a system call
 * per object. sw_rand_bytes() draws from a per-thread xoshiro256** seeded
 * from getrandom once per thread (and again in a forked child). Keys,
 * tokens and anything an attacker must not guess take getrandom directly.
 */
#ifndef SW_RAND_H
#define SW_RAND_H

#include <stddef.h>

void sw_rand_bytes(void *buf, size_t n);

#endif /* SW_RAND_H */
