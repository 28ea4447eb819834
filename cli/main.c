#include <stdio.h>
#include "tessera/tessera.h"
int main(void) { puts("tessera: not yet"); return 1; }
