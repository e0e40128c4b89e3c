"""Series: patches grouped into versions (b4), their states and notices."""
