// What the CLI asks of the system: where the demo model is, and, on
// Windows, UTF-8 arguments and console.
#pragma once

#include <string>
#include <vector>

namespace gemma2_cli {

// $GEMMA2_MODEL, else the demo model installed with the program
// (GEMMA2_INSTALLED_MODEL_DIR: <prefix>/share/gemma2/models/tiny-shakespeare,
// relative to <prefix>/bin, so a moved prefix still finds it), else the
// source tree's, for the program in its build tree.
std::string default_model_dir();

#if defined(_WIN32)
// The CLI speaks UTF-8 on every system. Windows hands main() its arguments
// in the ANSI code page and its console expects that page too, so the
// arguments are taken from the wide command line, the console is switched
// to UTF-8, and stdout/stderr are binary so output is byte for byte what it
// is elsewhere (other tooling reads it).
void use_utf8_console();
std::vector<std::string> utf8_arguments();
#endif

}  // namespace gemma2_cli
