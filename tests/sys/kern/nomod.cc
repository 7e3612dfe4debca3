// A shared object that is not a module: it has no uk_module_list, so
// kldload must refuse it with ENOEXEC.
extern "C" int nomod_answer() { return 42; }
