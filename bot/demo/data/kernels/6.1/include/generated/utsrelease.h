#define UTS_RELEASE "6.1.140"
