// IoKey: the pass that Session's library-only methods take (the "passkey"
// idiom). session.h only declares it, so code outside the library cannot make
// one and cannot call those methods; the worker and the Service, which
// include this header, can. This keeps Session free of friend declarations.
#ifndef SERVERCORE_SRC_IO_IO_KEY_H_
#define SERVERCORE_SRC_IO_IO_KEY_H_

namespace servercore::internal {

class IoKey {
 public:
  constexpr IoKey() noexcept = default;
};

}  // namespace servercore::internal

#endif  // SERVERCORE_SRC_IO_IO_KEY_H_
