#include "apps/chat/model_path.h"

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "core/error.h"

namespace pyllong::chat {

namespace fs = std::filesystem;

namespace {

// hub.home(): $PYLLONG_HOME, else ~/.cache/pyllong.
fs::path pyllong_home() {
    if (const char* env = std::getenv("PYLLONG_HOME"); env && *env) return fs::path(env);
    const char* home = std::getenv("HOME");
    return fs::path(home && *home ? home : ".") / ".cache" / "pyllong";
}

bool looks_like_a_path(const std::string& s) {
    return s.find('/') != std::string::npos || (s.size() > 5 && s.compare(s.size() - 5, 5, ".gguf") == 0);
}

}  // namespace

std::string resolve_model_path(const std::string& model) {
    std::error_code ec;
    if (fs::is_regular_file(model, ec)) return model;
    if (looks_like_a_path(model)) {
        if (fs::exists(model, ec)) throw IOError("model path is not a regular file: " + model);
        throw IOError("model file not found: " + model);
    }
    const fs::path dir = pyllong_home() / "models" / model;
    std::vector<fs::path> ggufs;
    if (fs::is_directory(dir, ec))
        for (const auto& e : fs::directory_iterator(dir, ec))
            if (e.is_regular_file(ec) && e.path().extension() == ".gguf") ggufs.push_back(e.path());
    if (ggufs.size() == 1) return ggufs.front().string();
    if (ggufs.size() > 1) throw IOError("several .gguf files in " + dir.string() + "; pass one with -m PATH");
    throw IOError("'" + model + "' is neither a file nor a pulled model (looked in " + dir.string() +
                  "); run `pyllong pull " + model + "` or pass -m PATH.gguf");
}

}  // namespace pyllong::chat
