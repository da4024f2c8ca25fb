# gemma2::compiled, the optional compiled unit (see GEMMA2_COMPILED in
# include/gemma2/version.hpp): a static library made from the shipped
# src/gemma2.cpp in the project that uses it, with that project's compiler
# and flags, built only when a target links it. Linking it defines
# GEMMA2_COMPILED for the linking target. Included by the source tree's
# CMakeLists.txt and by the installed package (component cxx); GEMMA2_SRC_DIR
# names the folder of the shipped sources.
if(NOT TARGET gemma2::compiled)
  add_library(gemma2_compiled STATIC EXCLUDE_FROM_ALL "${GEMMA2_SRC_DIR}/gemma2.cpp")
  target_link_libraries(gemma2_compiled PUBLIC gemma2::gemma2)
  target_compile_definitions(gemma2_compiled PUBLIC GEMMA2_COMPILED)
  add_library(gemma2::compiled ALIAS gemma2_compiled)
endif()
