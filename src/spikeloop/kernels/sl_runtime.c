/* Entry points of every library that spikeloop/kernels/native.py builds (native.load compiles
 * this file into each of them; declared in sl_native.h). */
#include "sl_native.h"

void sl_set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}
