# cmake -DTRAIN=path -DLLAMA2=path -DTEXT=file -DOUT=prefix -DMAX_VAL_LOSS=x -DARGS="flags" -P smoke_test.cmake
# Trains a tiny model on TEXT, fails unless the final validation loss is <= MAX_VAL_LOSS, then
# fails unless the llama2 example loads the checkpoint and generates non-empty text at temperature
# 0. Prints "SKIPPED: ..." (the test's SKIP_REGULAR_EXPRESSION) when TEXT is absent.
if(NOT EXISTS "${TEXT}")
  message("SKIPPED: ${TEXT} is absent (set LLAMABLOCKS_SHARED_DIR to the folder holding data/tinyshakespeare.txt)")
  return()
endif()
execute_process(COMMAND ${TRAIN} ${TEXT} ${ARGS} --out ${OUT}
                RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE errors)
message("${output}")
if(NOT status EQUAL 0)
  message(FATAL_ERROR "train_shakespeare exited with ${status}:\n${errors}")
endif()
if(NOT output MATCHES "final val loss ([0-9.]+)")
  message(FATAL_ERROR "no final val loss in the output")
endif()
set(val_loss "${CMAKE_MATCH_1}")
if(val_loss GREATER MAX_VAL_LOSS)
  message(FATAL_ERROR "final val loss ${val_loss} > ${MAX_VAL_LOSS}: the model did not learn")
endif()
execute_process(COMMAND ${LLAMA2} ${OUT}.bin -z ${OUT}.tokenizer.bin -t 0 -n 100 --threads 1
                RESULT_VARIABLE status OUTPUT_VARIABLE generated ERROR_VARIABLE errors)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "llama2 exited with ${status} on ${OUT}.bin:\n${errors}")
endif()
string(STRIP "${generated}" stripped)
if(stripped STREQUAL "")
  message(FATAL_ERROR "llama2 generated nothing from ${OUT}.bin:\n${errors}")
endif()
message("val loss ${val_loss} <= ${MAX_VAL_LOSS}; llama2 at temperature 0:\n${generated}")
