// seed=None's draw for fastdrop.torch, as a PyTorch C++ extension (opt-in: built by
// fastdrop._torch_draw through torch.utils.cpp_extension.load, against the installed
// torch's headers and libraries).
//
// A seed=None call takes the two draws of torch.randint(0, 2**32, (2,)) from a CPU
// torch.Generator. Through a tensor op (random_ on a scratch tensor) each costs a dispatch
// and a TensorIterator, about as much as the rest of a 2^8-element training step's kernels;
// here it is what that op's kernel does (random_from_to_kernel, CPU), without them: under
// the generator's mutex, one random64() per element, reduced modulo the range (2**32).
//
// The draw is exported as a C function through a capsule (`_draw_capsule`, named
// "fastdrop_torch_draw.draw"), which fastdrop._cpu._torch_lean calls directly, and as a
// Python function (`draw`) for tests.
#include <Python.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <torch/csrc/Generator.h>

#include <cstdint>
#include <mutex>

#ifndef TORCH_EXTENSION_NAME
#define TORCH_EXTENSION_NAME fastdrop_torch_draw
#endif
#define FD_CAT_(a, b) a##b
#define FD_CAT(a, b) FD_CAT_(a, b)
#define FD_STR_(a) #a
#define FD_STR(a) FD_STR_(a)

// 1 and the 64-bit seed in *out (low word first drawn) when `gen` is None (the default CPU
// generator) or a CPU torch.Generator; 0, nothing drawn, for anything else (the caller
// draws through torch). Needs the GIL; releases it only to wait for a contended mutex.
extern "C" int fastdrop_torch_draw(PyObject* gen, uint64_t* out) noexcept {
  try {
    at::Generator g;
    if (gen == nullptr || gen == Py_None) {
      g = at::detail::getDefaultCPUGenerator();
    } else if (THPGenerator_Check(gen)) {
      g = reinterpret_cast<THPGenerator*>(gen)->cdata;
    } else {
      return 0;
    }
    if (!g.defined() || g.device().type() != at::kCPU) return 0;
    auto* impl = at::check_generator<at::CPUGeneratorImpl>(g);
    std::unique_lock<std::mutex> lock(g.mutex(), std::try_to_lock);
    if (!lock.owns_lock()) {  // another thread's op holds it: wait without the GIL
      Py_BEGIN_ALLOW_THREADS
      lock.lock();
      Py_END_ALLOW_THREADS
    }
    // random_from_to's value for a range of 2**32: random64() % range + 0, per element
    const uint64_t lo = impl->random64() & 0xffffffffu;
    const uint64_t hi = impl->random64() & 0xffffffffu;
    *out = lo | (hi << 32);
    return 1;
  } catch (...) {
    return 0;
  }
}

static PyObject* fd_draw(PyObject*, PyObject* gen) {
  uint64_t w;
  if (!fastdrop_torch_draw(gen, &w)) Py_RETURN_NONE;
  return PyLong_FromUnsignedLongLong(w);
}

static PyMethodDef fd_methods[] = {
    {"draw", fd_draw, METH_O,
     "draw(generator) -> int or None: seed=None's 64-bit seed from `generator` (None: "
     "torch.default_generator), None for a generator that is not a CPU torch.Generator"},
    {nullptr, nullptr, 0, nullptr}};

static struct PyModuleDef fd_module = {PyModuleDef_HEAD_INIT, FD_STR(TORCH_EXTENSION_NAME),
                                       "fastdrop.torch's seed=None draw", -1, fd_methods};

PyMODINIT_FUNC FD_CAT(PyInit_, TORCH_EXTENSION_NAME)(void) {
  PyObject* m = PyModule_Create(&fd_module);
  if (m == nullptr) return nullptr;
  PyObject* cap = PyCapsule_New(reinterpret_cast<void*>(&fastdrop_torch_draw),
                                "fastdrop_torch_draw.draw", nullptr);
  if (cap == nullptr || PyModule_AddObject(m, "_draw_capsule", cap) < 0) {
    Py_XDECREF(cap);
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
