#define UTS_RELEASE "3.16.85"
