# cmake -DFIRST="cmd;args" -DSECOND="cmd;args" -P same_output.cmake
# Runs both commands and fails unless each exits 0 and their standard outputs are identical.
foreach(which FIRST SECOND)
  execute_process(COMMAND ${${which}} RESULT_VARIABLE status OUTPUT_VARIABLE output_${which}
                  ERROR_VARIABLE errors)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "${which} (${${which}}) exited with ${status}:\n${errors}")
  endif()
endforeach()
if(NOT output_FIRST STREQUAL output_SECOND)
  message(FATAL_ERROR "outputs differ:\n${output_FIRST}\nversus\n${output_SECOND}")
endif()
message(STATUS "same output: ${output_FIRST}")
