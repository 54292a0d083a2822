from fbgen.cli import main

main()
