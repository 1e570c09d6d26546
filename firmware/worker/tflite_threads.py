"""Run pyopen-wakeword's TFLite interpreters on a set number of threads.

pyopen-wakeword creates its interpreters with default options, which lets TFLite use
several threads: on a 2-core board that costs about 1.6 times the CPU of one thread for
the same result (measured here). The library offers no setting, so
each library handle it loads gets interpreter options with the thread count we choose.
"""

import ctypes

_patched_threads = None


def limit_threads(threads: int = 1) -> None:
    """From now on, interpreters pyopen-wakeword creates in this process use `threads`."""
    global _patched_threads
    from pyopen_wakeword import wakeword
    if _patched_threads == threads:
        return
    base_init = getattr(wakeword.TfLiteWakeWord.__init__, "__wrapped__",
                        wakeword.TfLiteWakeWord.__init__)

    def init(self, *args, **kwargs):
        base_init(self, *args, **kwargs)
        lib = self.lib
        lib.TfLiteInterpreterOptionsCreate.restype = ctypes.c_void_p
        lib.TfLiteInterpreterOptionsSetNumThreads.argtypes = [ctypes.c_void_p, ctypes.c_int32]
        options = lib.TfLiteInterpreterOptionsCreate()
        lib.TfLiteInterpreterOptionsSetNumThreads(options, threads)
        create = lib.TfLiteInterpreterCreate
        lib.TfLiteInterpreterCreate = lambda model, opts=None: create(model, opts or options)

    init.__wrapped__ = base_init
    wakeword.TfLiteWakeWord.__init__ = init
    _patched_threads = threads
