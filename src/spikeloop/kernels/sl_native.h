/* Shared by every C library that spikeloop/kernels/native.py builds (the generic kernels in
 * native.c and any other library built with native.load): the standard headers, INLINE,
 * thread_range, and the entry points every such library exports (defined in sl_runtime.c,
 * which native.load links into each library). The builder puts this folder on the include
 * path, so a library's source says #include "sl_native.h". */
#ifndef SL_NATIVE_H
#define SL_NATIVE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define INLINE static inline __attribute__((always_inline))

/* [lo, hi): this OpenMP thread's contiguous share of `total` rows (all of them without OpenMP). */
INLINE void thread_range(int64_t total, int64_t *lo, int64_t *hi) {
    *lo = 0;
    *hi = total;
#ifdef _OPENMP
    const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
    *lo = total * id / nt;
    *hi = total * (id + 1) / nt;
#endif
}

/* Use n OpenMP threads in this library's parallel regions (sl_runtime.c). */
void sl_set_threads(int n);

#endif /* SL_NATIVE_H */
