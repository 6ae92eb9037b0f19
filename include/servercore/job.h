// Job: a move-only, type-erased `void()` callable, the unit of work a
// JobQueue runs. No std::function: a small callable (at most kInlineSize
// bytes, alignment at most max_align_t, nothrow move-constructible) lives
// inside the Job itself, so making, moving and running one allocates nothing;
// a bigger one is moved to the heap once, when the Job is made, and moving
// the Job then moves a pointer. Captures may be move-only (a unique_ptr, a
// SendBufferRef).
//
//   Job job([buf = std::move(buf), room] { room->Broadcast(buf); });
//   job();
//
// Thread safety: Distinct objects: Safe. Shared objects: Unsafe. A Job may
// be made on one thread and run on another.
#ifndef SERVERCORE_JOB_H_
#define SERVERCORE_JOB_H_

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace servercore {

class Job {
 public:
  static constexpr std::size_t kInlineSize = 64;
  static constexpr std::size_t kInlineAlign = alignof(std::max_align_t);

  // Whether a callable of type F is stored inside the Job (no allocation).
  template <typename F>
  static constexpr bool kFitsInline =
      sizeof(F) <= kInlineSize &&
      alignof(F) <= kInlineAlign&& std::is_nothrow_move_constructible_v<F>;

  // An empty Job; running it is a programming error.
  Job() noexcept = default;

  template <typename F>
  requires(!std::is_same_v<std::remove_cvref_t<F>, Job> &&
           std::is_invocable_v<std::decay_t<F>&>)
      Job(F&& callable) {  // NOLINT(google-explicit-constructor): a conversion
    using Fn = std::decay_t<F>;
    if constexpr (kFitsInline<Fn>) {
      ::new (static_cast<void*>(storage_)) Fn(std::forward<F>(callable));
      ops_ = &kInlineOps<Fn>;
    } else {
      Fn* heap = new Fn(std::forward<F>(callable));
      ::new (static_cast<void*>(storage_)) Fn*(heap);
      ops_ = &kHeapOps<Fn>;
    }
  }

  Job(Job&& other) noexcept : ops_(other.ops_) {
    if (ops_ != nullptr) {
      ops_->relocate(other.storage_, storage_);
      other.ops_ = nullptr;
    }
  }
  Job& operator=(Job&& other) noexcept {
    if (this != &other) {
      Reset();
      if (other.ops_ != nullptr) {
        other.ops_->relocate(other.storage_, storage_);
        ops_ = std::exchange(other.ops_, nullptr);
      }
    }
    return *this;
  }
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;
  ~Job() { Reset(); }

  // Runs the callable (which stays alive until the Job is destroyed or
  // reset). Must not be empty.
  void operator()() { ops_->invoke(storage_); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }
  // True when the callable lives inside the Job (false when empty).
  bool stored_inline() const noexcept {
    return ops_ != nullptr && ops_->is_inline;
  }
  // Destroys the callable now; the Job is empty afterwards.
  void Reset() noexcept {
    if (ops_ != nullptr) std::exchange(ops_, nullptr)->destroy(storage_);
  }

 private:
  struct Ops {
    void (*invoke)(void* storage);
    // Moves the callable from `from` to the raw `to`, ending its life in
    // `from`.
    void (*relocate)(void* from, void* to) noexcept;
    void (*destroy)(void* storage) noexcept;
    bool is_inline;
  };

  template <typename Fn>
  static constexpr Ops kInlineOps{
      .invoke =
          [](void* storage) { (*std::launder(static_cast<Fn*>(storage)))(); },
      .relocate =
          [](void* from, void* to) noexcept {
            Fn* source = std::launder(static_cast<Fn*>(from));
            ::new (to) Fn(std::move(*source));
            source->~Fn();
          },
      .destroy =
          [](void* storage) noexcept {
            std::launder(static_cast<Fn*>(storage))->~Fn();
          },
      .is_inline = true,
  };

  template <typename Fn>
  static constexpr Ops kHeapOps{
      .invoke =
          [](void* storage) { (**std::launder(static_cast<Fn**>(storage)))(); },
      .relocate =
          [](void* from, void* to) noexcept {
            ::new (to) Fn*(*std::launder(static_cast<Fn**>(from)));
          },
      .destroy =
          [](void* storage) noexcept {
            delete *std::launder(static_cast<Fn**>(storage));
          },
      .is_inline = false,
  };

  alignas(kInlineAlign) std::byte storage_[kInlineSize];
  const Ops* ops_ = nullptr;
};

}  // namespace servercore

#endif  // SERVERCORE_JOB_H_
