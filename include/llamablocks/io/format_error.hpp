// format_error: a file read by llamablocks (tokenizer, checkpoint) cannot be opened or does not
// follow its format.
//
// Shared by every reader in io/ and text/. As for every llamablocks::error, the message names what
// is wrong and the value found: the file, the record (e.g. the token index), the field and its
// value, e.g. "llama2.c tokenizer '/m/tokenizer.bin': token 17: len must be in
// [0, max_token_length = 27], got 300".
#pragma once

#include "llamablocks/core/error.hpp"

namespace llamablocks {

/// A file cannot be opened or read, is truncated, or holds a field with an invalid value.
class format_error : public error {
 public:
  using error::error;
};

}  // namespace llamablocks
