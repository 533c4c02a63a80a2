#include <stdio.h>
int main(void) { puts("hsmsign " HSMSIGN_VERSION); return 0; }
