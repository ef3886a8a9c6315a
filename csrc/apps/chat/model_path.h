// A -m argument -> a GGUF path: an existing file, or the name of a model already pulled into
// pyllong's cache ($PYLLONG_HOME/models/<name>/<file>.gguf, else
// ~/.cache/pyllong/models/<name>/...), the layout of pyllong/hub.py's cached_path(). The
// binary does not download: `pyllong pull NAME` does.
#pragma once
#include <string>

namespace pyllong::chat {

// Throws IOError with one clear sentence when nothing matches.
std::string resolve_model_path(const std::string& model);

}  // namespace pyllong::chat
