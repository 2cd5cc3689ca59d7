from review.entry import main

main()
