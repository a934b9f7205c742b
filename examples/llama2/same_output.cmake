# cmake -DFIRST="cmd;args" -DSECOND="cmd;args" [-DSKIP_IF=regex] -P same_output.cmake
# Runs both commands and fails unless each exits 0 and their standard outputs are identical. When
# FIRST fails with standard error matching SKIP_IF (e.g. no CUDA device), prints "SKIPPED: " and
# the reason instead (the test's SKIP_REGULAR_EXPRESSION).
cmake_minimum_required(VERSION 3.16)
foreach(which FIRST SECOND)
  execute_process(COMMAND ${${which}} RESULT_VARIABLE status OUTPUT_VARIABLE output_${which}
                  ERROR_VARIABLE errors)
  if(NOT status EQUAL 0)
    if(which STREQUAL "FIRST" AND DEFINED SKIP_IF AND errors MATCHES "${SKIP_IF}")
      message(STATUS "SKIPPED: ${errors}")
      return()
    endif()
    message(FATAL_ERROR "${which} (${${which}}) exited with ${status}:\n${errors}")
  endif()
endforeach()
if(NOT output_FIRST STREQUAL output_SECOND)
  message(FATAL_ERROR "outputs differ:\n${output_FIRST}\nversus\n${output_SECOND}")
endif()
message(STATUS "same output: ${output_FIRST}")
