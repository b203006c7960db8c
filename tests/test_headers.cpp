// The public headers compile as C++ (extern "C", no C-only constructs) and link from a C++ program.
#include "fibvid/fibvid.h"

#include <cstdio>

int main()
{
    FvFitSettings fs;
    fv_fit_default_settings(&fs);
    std::printf("fibvid %s (C++), %lld epochs by default\n", fv_version(), static_cast<long long>(fs.epochs));
    return 0;
}
